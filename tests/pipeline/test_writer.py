from pathlib import Path

import large_image
import numpy as np
import openslide
import pytest
import tifffile

from pipeline import open_slide
from pipeline.io.jpeg_tiles import JpegTileCopier
from pipeline.io.writer import CopiedTile, EncodedTile, PyramidSpec, write_pyramid


def _tiles(image: np.ndarray, size: int):
    for top in range(0, image.shape[0], size):
        for left in range(0, image.shape[1], size):
            yield image[top:top + size, left:left + size]


def test_level_sizes_halve_until_one_tile():
    spec = PyramidSpec(width=2220, height=2967, tile_width=240, tile_height=240)
    assert spec.level_sizes() == [(2220, 2967), (1110, 1484), (555, 742), (278, 371), (139, 186)]
    assert PyramidSpec(width=16, height=16, tile_width=64, tile_height=64).level_sizes() == [
        (16, 16)]


def test_lossless_pyramid_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (700, 1000, 3), dtype=np.uint8)
    path = tmp_path / "out.tiff"
    spec = PyramidSpec(width=1000, height=700, tile_width=256, tile_height=256, mpp=(0.5, 0.5))
    sizes = write_pyramid(path, spec, _tiles(image, 256), workdir=tmp_path)

    assert sizes == [(1000, 700), (500, 350), (250, 175)]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.tiff"]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        pages = list(tif.pages)
        assert [page.subfiletype for page in pages] == [0, 1, 1]
        assert all(page.is_tiled for page in pages)
        assert np.array_equal(pages[0].asarray(), image)
        expected = image.reshape(350, 2, 500, 2, 3).mean(axis=(1, 3))
        assert np.abs(pages[1].asarray().astype(float) - expected).max() <= 0.5
        assert pages[0].tags["ResolutionUnit"].value == 3  # centimetre
    with openslide.OpenSlide(path) as handle:
        assert handle.properties["openslide.vendor"] == "generic-tiff"
        assert handle.level_dimensions == ((1000, 700), (500, 350), (250, 175))
        assert float(handle.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    source = large_image.open(str(path))
    assert source.getMetadata()["sizeX"] == 1000
    assert source.getMetadata()["mm_x"] == pytest.approx(0.0005)


def test_mask_pyramid_single_band_max(tmp_path):
    mask = np.zeros((300, 300), dtype=np.uint8)
    mask[101, 101] = 255  # one pixel must survive every reduction
    path = tmp_path / "mask.tiff"
    spec = PyramidSpec(width=300, height=300, tile_width=128, tile_height=128, samples=1,
                       reduction="max")
    write_pyramid(path, spec, (tile[:, :, np.newaxis] for tile in _tiles(mask, 128)))
    with tifffile.TiffFile(path) as tif:
        levels = [page.asarray() for page in tif.pages]
    assert [level.shape for level in levels] == [(300, 300), (150, 150), (75, 75)]
    assert [int(level.max()) for level in levels] == [255, 255, 255]
    assert levels[2][25, 25] == 255


def test_wrong_tile_count_rejected(tmp_path):
    spec = PyramidSpec(width=300, height=300, tile_width=256, tile_height=256)
    tiles = [np.zeros(shape, dtype=np.uint8) for shape in ((256, 256, 3), (256, 44, 3),
                                                            (44, 256, 3))]
    with pytest.raises(ValueError, match="3 level-0 tiles were supplied; the image needs 4"):
        write_pyramid(tmp_path / "short.tiff", spec, tiles)
    assert list(tmp_path.iterdir()) == []


def test_copied_jpeg_tiles_decode_identically(tmp_path, shared_data):
    source = shared_data / "slides" / "cmu-1-small-region.svs"
    with open_slide(source) as slide:
        info = slide.info
    copier, reason = JpegTileCopier.open(source, info)
    assert copier is not None, reason
    assert reason == ""
    layout = copier.layout
    assert (layout.tile_width, layout.tile_height, layout.photometric) == (240, 240, "rgb")
    spec = PyramidSpec(width=info.width, height=info.height, tile_width=240, tile_height=240,
                       compression="jpeg", mpp=(0.499, 0.499), jpeg_copy=layout)

    def tiles():
        for index in range(spec.tile_count):
            data = copier.raw_tile(index)
            pixels = copier.decode(data)
            if index == 5:
                changed = pixels.copy()
                changed[:60, :60] = (20, 200, 30)
                yield EncodedTile(data=copier.encode(changed), pixels=changed)
            else:
                yield CopiedTile(data=data, pixels=pixels)

    path = tmp_path / "copy.tiff"
    write_pyramid(path, spec, tiles())
    copier.close()

    original, written = tifffile.imread(source), tifffile.imread(path)
    differs = (original != written).any(axis=2)
    assert differs[:240, 1200:1440].any()
    differs[:240, 1200:1440] = False
    assert not differs.any()
    with openslide.OpenSlide(source) as before, openslide.OpenSlide(path) as after:
        size = before.dimensions
        pixels_before = np.asarray(before.read_region((0, 0), 0, size))[:, :, :3]
        pixels_after = np.asarray(after.read_region((0, 0), 0, size))[:, :, :3]
    assert np.array_equal(pixels_after[:, :1200], pixels_before[:, :1200])
    assert np.array_equal(pixels_after[240:], pixels_before[240:])
    assert np.abs(pixels_after[10, 1210].astype(int) - (20, 200, 30)).max() < 30
    # libtiff (large-image's TIFF source) decodes the tiles after the re-encoded one intact.
    through_libtiff = large_image.open(str(path)).getRegion(format="numpy")[0][:, :, :3]
    assert np.array_equal(through_libtiff, pixels_after)


@pytest.mark.parametrize(("name", "reason"), [
    ("slides/orientation6.tif", "non-default Orientation"),
    ("slides/tcga-cr-7395-jp2k.svs", "not JPEG-compressed"),
    ("slides/yb10kx5k-zstd.tiff", "not JPEG-compressed"),
])
def test_jpeg_copier_refusals(shared_data, name, reason):
    path: Path = shared_data / name
    with open_slide(path) as slide:
        copier, why = JpegTileCopier.open(path, slide.info)
    assert copier is None
    assert reason in why
