from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pipeline import open_slide
from pipeline.errors import SlideReadError, UnsupportedSlideError
from pipeline.io.slide import to_rgb

# (file, format, reader, width, height, level downsamples, tile, mpp, magnification,
#  associated images, compression, bands)
REAL_SLIDES = [
    ("slides/cmu-1-small-region.svs", "aperio-svs", "openslide", 2220, 2967, [1.0], (240, 240),
     0.499, 20.0, ["label", "macro", "thumbnail"], "jpeg", 3),
    ("slides/tcga-cr-7395-jp2k.svs", "aperio-svs", "openslide", 4443, 3567, [1.0, 2.0005],
     (256, 256), None, None, ["thumbnail"], "jpeg2000", 3),
    ("slides/boxes.tiff", "generic-tiff", "tifffile", 300, 250, [1.0, 2.0, 4.0, 8.1081], (64, 64),
     None, None, [], "deflate", 3),
    ("slides/boxes_0.dcm", "dicom", "openslide", 16, 16, [1.0], (16, 16), 0.499, 20.0,
     ["thumbnail"], "jpeg", 4),
    ("slides/yb10kx5k-zstd.tiff", "generic-tiff", "tifffile", 10000, 5000,
     [1.0, 2.0, 4.0, 8.0, 16.0], (1024, 1024), None, None, [], "zstd", 3),
    ("slides/orientation6.tif", "generic-tiff", "tifffile", 180, 120, [1.0, 2.0, 4.0], (64, 64),
     None, None, [], "jpeg", 1),
    ("slides/rgba-pyramid.tiff", "generic-tiff", "tifffile", 600, 600, [1.0, 2.0], (512, 512),
     None, None, [], "lzw", 4),
    ("slides/grey-alpha.tiff", "generic-tiff", "tiff", 2, 1, [1.0], (256, 256), None, None, [],
     "jpeg", 2),
    ("slides/smaller-than-tile.svs", "aperio-svs", "openslide", 16, 16, [1.0], (16, 16), 0.499,
     20.0, ["thumbnail"], "jpeg", 3),
    ("ink/tcga-green-pen.png", "png", "pil", 754, 631, [1.0], (754, 631), None, None, [],
     "png", 4),
    ("ink/tile-clean-lung.png", "png", "pil", 512, 512, [1.0], (512, 512), None, None, [],
     "png", 3),
]


@pytest.mark.parametrize(
    ("name", "kind", "reader", "width", "height", "downsamples", "tile", "mpp", "magnification",
     "associated", "compression", "bands"), REAL_SLIDES, ids=[row[0] for row in REAL_SLIDES])
def test_real_slide_metadata(shared_data, name, kind, reader, width, height, downsamples, tile,
                             mpp, magnification, associated, compression, bands):
    with open_slide(shared_data / name) as slide:
        info = slide.info
    assert info.format == kind
    assert info.reader == reader
    assert (info.width, info.height) == (width, height)
    assert info.level_count == len(downsamples)
    assert info.level_downsamples == downsamples
    assert (info.tile_width, info.tile_height) == tile
    assert info.mpp_x == mpp
    assert info.mpp_y == mpp
    assert info.magnification == magnification
    assert info.associated_images == associated
    assert info.compression == compression
    assert info.bands == bands
    assert info.to_dict()["width"] == width


@pytest.mark.parametrize(("name", "error", "words"), [
    ("bad/random-bytes.svs", UnsupportedSlideError, "not a recognised slide format"),
    ("bad/corrupt-jpeg-tile.svs", SlideReadError, "pixel data cannot be decoded"),
    ("bad/unknown-compression.tiff", SlideReadError, "pixel data cannot be decoded"),
    ("slides/striped-16bit.tif", UnsupportedSlideError, "uint16 samples"),
    ("slides/striped-16bit.tif", UnsupportedSlideError, "convert it to 8-bit RGB first"),
    ("slides/vectra-multiplex.qptiff", UnsupportedSlideError, "not a brightfield RGB slide"),
])
def test_unreadable_files_rejected(shared_data, name, error, words):
    with pytest.raises(error) as raised:
        open_slide(shared_data / name)
    assert type(raised.value) is error
    assert words in str(raised.value)
    assert Path(name).name in str(raised.value)
    assert raised.value.path == str(shared_data / name)


@pytest.mark.filterwarnings("ignore:The \\(0028,0004\\) 'Photometric Interpretation'")
def test_dicom_without_image_type(shared_data):
    from pydicom.pixels import pixel_array

    path = shared_data / "slides" / "small-dicom-wsi.dcm"
    with open_slide(path) as slide:
        info = slide.info
        assert (info.format, info.reader) == ("dicom", "pydicom")
        assert (info.width, info.height) == (3236, 2638)
        assert (info.tile_width, info.tile_height) == (500, 500)
        assert info.mpp_x is None  # its imaged volume (15 x 15 mm) contradicts square pixels
        assert info.compression == "jpeg"
        # The file stores its 7 x 6 frames column by column: frame 7 is row 1 of column 1.
        assert np.array_equal(slide.read_region(500, 500, 500, 500),
                              pixel_array(str(path), index=7))
        edge = slide.read_region(3000, 2500, 236, 138)
        assert np.array_equal(edge, pixel_array(str(path), index=41)[:138, :236])
        assert slide.read_region(0, 0, 3236, 2638, downsample=8).shape == (330, 405, 3)


def test_non_wsi_dicom_rejected(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset

    dataset = pydicom.Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    dataset.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT image
    path = tmp_path / "ct.dcm"
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(UnsupportedSlideError, match="not a whole-slide image"):
        open_slide(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(SlideReadError, match="file not found"):
        open_slide(tmp_path / "absent.svs")


def test_decoding_failure_is_not_unsupported(shared_data):
    with pytest.raises(SlideReadError) as raised:
        open_slide(shared_data / "bad" / "corrupt-jpeg-tile.svs")
    assert not isinstance(raised.value, UnsupportedSlideError)


def test_read_region_shape_and_type(shared_data):
    with open_slide(shared_data / "slides" / "cmu-1-small-region.svs") as slide:
        region = slide.read_region(100, 200, 300, 150)
        scaled = slide.read_region(0, 0, 1001, 500, downsample=4)
    assert region.shape == (150, 300, 3)
    assert region.dtype == np.uint8
    assert scaled.shape == (125, 251, 3)


def test_read_region_outside_is_white(shared_data):
    with open_slide(shared_data / "slides" / "cmu-1-small-region.svs") as slide:
        outside = slide.read_region(5000, 5000, 64, 64)
        edge = slide.read_region(2200, 0, 40, 40)
    assert (outside == 255).all()
    assert (edge[:, 20:] == 255).all()
    assert edge[:, :20].shape == (40, 20, 3)


def test_read_region_matches_tifffile_for_lossless(shared_data):
    path = shared_data / "slides" / "boxes.tiff"
    expected = tifffile.imread(path)
    with open_slide(path) as slide:
        pixels = slide.read_region(0, 0, 300, 250)
    assert np.array_equal(pixels, expected)


def test_thumbnail_fits_max_size(shared_data):
    with open_slide(shared_data / "slides" / "cmu-1-small-region.svs") as slide:
        thumbnail = slide.thumbnail(256)
    assert thumbnail.mode == "RGB"
    assert max(thumbnail.size) == 256
    assert thumbnail.size == (192, 256)


def test_associated_label_image(shared_data):
    with open_slide(shared_data / "slides" / "cmu-1-small-region.svs") as slide:
        label = slide.associated_image("label")
        with pytest.raises(KeyError, match="no associated image"):
            slide.associated_image("overview")
    assert label.mode == "RGB"
    assert label.size == (387, 463)


def test_orientation6_matches_pillow(shared_data):
    path = shared_data / "slides" / "orientation6.tif"
    with Image.open(path) as image:
        stored = np.asarray(image.convert("L"))
    expected = np.rot90(tifffile.imread(path), k=-1)  # tag 6: turn 90 degrees clockwise
    with open_slide(path) as slide:
        pixels = slide.read_region(0, 0, 180, 120)
    assert stored.shape == expected.shape
    assert np.array_equal(pixels[:, :, 0], expected)
    assert np.array_equal(pixels[:, :, 0], pixels[:, :, 2])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_tag(tmp_path, orientation):
    stored = np.arange(40 * 64 * 3, dtype=np.uint32).reshape(40, 64, 3).astype(np.uint8)
    stored[:8, :8] = [255, 0, 0]  # a marker in the stored top-left corner
    path = tmp_path / f"orient{orientation}.tif"
    tifffile.imwrite(path, stored, tile=(16, 16), photometric="rgb",
                     extratags=[(274, 3, 1, orientation, True)])
    transposes = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                  4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                  6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_90}
    expected = Image.fromarray(stored)
    if orientation in transposes:
        expected = expected.transpose(transposes[orientation])
    with open_slide(path) as slide:
        assert (slide.info.width, slide.info.height) == expected.size
        pixels = slide.read_region(0, 0, slide.info.width, slide.info.height)
        corner = slide.read_region(3, 5, 10, 7)
    assert np.array_equal(pixels, np.asarray(expected))
    assert np.array_equal(corner, np.asarray(expected)[5:12, 3:13])


def test_grey_alpha_composited_on_white(shared_data):
    with open_slide(shared_data / "slides" / "grey-alpha.tiff") as slide:
        pixels = slide.read_region(0, 0, 2, 1)
    assert pixels.shape == (1, 2, 3)
    assert (pixels == 255).all()


def test_to_rgb_conversions():
    grey = np.array([[0, 128]], dtype=np.uint8)
    assert to_rgb(grey, path="x").tolist() == [[[0, 0, 0], [128, 128, 128]]]
    rgba = np.array([[[0, 0, 0, 0], [10, 20, 30, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    assert to_rgb(rgba, path="x").tolist() == [[[255, 255, 255], [10, 20, 30], [127, 127, 127]]]
    with pytest.raises(UnsupportedSlideError, match="uint16"):
        to_rgb(np.zeros((2, 2), dtype=np.uint16), path="x")


def test_rgba_pyramid_reads_rgb(shared_data):
    with open_slide(shared_data / "slides" / "rgba-pyramid.tiff") as slide:
        pixels = slide.read_region(0, 0, 600, 600, downsample=2)
    assert pixels.shape == (300, 300, 3)


def test_ome_tiff_written_with_tifffile(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (600, 800, 3), dtype=np.uint8)
    path = tmp_path / "slide.ome.tiff"
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as writer:
        writer.write(image, tile=(256, 256), photometric="rgb", subifds=1, compression="zlib",
                     metadata={"PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": 0.25, "PhysicalSizeYUnit": "µm"})
        writer.write(image[::2, ::2], tile=(256, 256), photometric="rgb", subfiletype=1,
                     compression="zlib")
    with open_slide(path) as slide:
        assert slide.info.format == "ome-tiff"
        assert (slide.info.width, slide.info.height) == (800, 600)
        assert slide.info.level_count == 2
        assert slide.info.mpp_x == 0.25
        assert np.array_equal(slide.read_region(0, 0, 800, 600), image)


def test_plain_jpeg_file(tmp_path, shared_data):
    path = tmp_path / "photo.jpg"
    Image.open(shared_data / "ink" / "tile-clean-lung.png").save(path, quality=95)
    with open_slide(path) as slide:
        assert slide.info.format == "jpeg"
        assert slide.info.compression == "jpeg"
        assert slide.info.is_lossy
        assert slide.read_region(0, 0, 512, 512).shape == (512, 512, 3)
