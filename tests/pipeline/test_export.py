"""De-identified export: read back with tifffile and OpenSlide, and the check that rejects leaks."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from PIL import Image

from pipeline.export import (
    ALLOWED_TAGS,
    DeidentificationError,
    ExportCancelled,
    export_fraction,
    export_slide,
    strip_jpeg_text,
    verify_deidentified,
)
from pipeline.progress import ProgressEvent

CMU_NAMES = ("cmu-1-small-region.svs", "cmu-1-small-region")
GREEN_NAMES = ("tcga-green-pen.png", "tcga-green-pen")


def _restored(run: tuple[dict, Path]) -> Path:
    return run[1] / "restored.tiff"


def _level0(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return tif.pages[0].asarray()


@pytest.fixture(scope="module")
def cmu_export(cmu_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmu-export") / "set-v1-0001.tiff"
    events: list[ProgressEvent] = []
    result = export_slide(
        _restored(cmu_run),
        out,
        identifier="set-v1-0001",
        forbidden_text=CMU_NAMES,
        progress=events.append,
    )
    return result, events


def test_source_carries_original_name(cmu_run):
    # The restored pyramid names its source; the export must not.
    assert b"cmu-1-small-region.svs" in _restored(cmu_run).read_bytes()


def test_jpeg_export_copies_level0(cmu_export, cmu_run):
    result, _ = cmu_export
    assert result.level0 == "copied"
    assert np.array_equal(_level0(result.path), _level0(_restored(cmu_run)))
    assert (result.width, result.height) == (2220, 2967)
    assert result.mpp_x == pytest.approx(0.499, abs=1e-3)


def test_export_pages_tiled_and_reduced(cmu_export):
    result, _ = cmu_export
    with tifffile.TiffFile(result.path) as tif:
        assert tif.is_bigtiff
        assert len(tif.series) == 1
        pages = list(tif.pages)
        assert [page.subfiletype for page in pages] == [0] + [1] * (len(pages) - 1)
        assert all(page.is_tiled for page in pages)
        assert [(page.imagewidth, page.imagelength) for page in pages] == result.levels


def test_export_has_only_allowed_tags(cmu_export):
    result, _ = cmu_export
    with tifffile.TiffFile(result.path) as tif:
        for page in tif.pages:
            names = {tag.name for tag in page.tags.values()}
            assert {tag.code for tag in page.tags.values()} <= set(ALLOWED_TAGS)
            for forbidden in ("ImageDescription", "Software", "DateTime", "Artist",
                              "HostComputer", "Make", "Model", "DocumentName"):
                assert forbidden not in names
            assert page.tags["ResolutionUnit"].value == 3


def test_openslide_reads_export(cmu_export):
    result, _ = cmu_export
    with openslide.OpenSlide(str(result.path)) as handle:
        assert handle.properties["openslide.vendor"] == "generic-tiff"
        assert dict(handle.associated_images) == {}
        assert handle.level_dimensions == tuple(tuple(size) for size in result.levels)
        assert float(handle.properties["openslide.mpp-x"]) == pytest.approx(0.499, abs=1e-3)
        assert not [key for key in handle.properties if "Description" in key]


def test_export_bytes_hold_no_name(cmu_export):
    result, _ = cmu_export
    content = result.path.read_bytes().lower()
    for name in CMU_NAMES:
        assert name.encode() not in content
    assert b"inkweb" not in content


def test_export_result_checksum_and_report(cmu_export):
    result, events = cmu_export
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert result.size_bytes == result.path.stat().st_size
    assert "ImageDescription (270) tag on 1 page" in result.removed
    assert any("OpenSlide opens it as generic-tiff" in check for check in result.checks)
    assert any("2 original names searched" in check for check in result.checks)
    assert events[0].stage == "export"
    assert (events[-1].stage, events[-1].done, events[-1].total) == ("verify", 1, 1)
    assert sorted(path.name for path in result.path.parent.iterdir()) == ["set-v1-0001.tiff"]


def test_lossless_export_keeps_pixels(green_run_fake, tmp_path):
    out = tmp_path / "set-v1-0002.tiff"
    result = export_slide(
        _restored(green_run_fake), out, identifier="set-v1-0002", forbidden_text=GREEN_NAMES
    )
    assert result.level0 == "lossless"
    assert np.array_equal(_level0(out), _level0(_restored(green_run_fake)))
    assert b"tcga-green-pen" not in out.read_bytes().lower()
    assert result.mpp_x is None


def test_cancelled_export_leaves_nothing(cmu_run, tmp_path):
    def cancel(event: ProgressEvent) -> None:
        if event.stage == "export" and event.done > 0:
            raise ExportCancelled("stop")

    with pytest.raises(ExportCancelled):
        export_slide(_restored(cmu_run), tmp_path / "x-1.tiff", identifier="x-1", progress=cancel)
    assert list(tmp_path.iterdir()) == []


def test_output_must_be_named_by_identifier(cmu_run, tmp_path):
    with pytest.raises(ValueError, match=r"must be named x-1\.tiff"):
        export_slide(_restored(cmu_run), tmp_path / "restored.tiff", identifier="x-1")
    with pytest.raises(ValueError, match="identifier"):
        export_slide(_restored(cmu_run), tmp_path / "a b.tiff", identifier="a b")


def test_export_fraction_orders_stages():
    fractions = [
        export_fraction(ProgressEvent("export", 0, 10)),
        export_fraction(ProgressEvent("export", 5, 10)),
        export_fraction(ProgressEvent("export", 10, 10)),
        export_fraction(ProgressEvent("verify", 1, 1)),
    ]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0


# ---- the read-back check on files that leak ---------------------------------------------


def _pyramid(path: Path, *, description: str | None = None, label: bool = False,
             extratags=()) -> np.ndarray:
    """Write a small two-level tiled pyramid, optionally with a description or a label page."""
    image = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(image, tile=(128, 128), photometric="rgb", software=False, metadata=None,
                     description=description, subfiletype=0, extratags=extratags)
        writer.write(image[::2, ::2], tile=(128, 128), photometric="rgb", software=False,
                     metadata=None, subfiletype=1)
        if label:
            writer.write(np.full((64, 96, 3), 200, dtype=np.uint8), photometric="rgb",
                         software=False, metadata=None, subfiletype=0)
    return image


def test_check_accepts_clean_pyramid(tmp_path):
    path = tmp_path / "clean.tiff"
    _pyramid(path)
    checks = verify_deidentified(path, forbidden_text=["slide-0042.svs"])
    assert any("none found" in check for check in checks)


def test_check_rejects_description(tmp_path):
    path = tmp_path / "described.tiff"
    _pyramid(path, description="Patient 0042 liver biopsy")
    with pytest.raises(DeidentificationError) as error:
        verify_deidentified(path)
    assert any("ImageDescription (270)" in problem for problem in error.value.problems)


def test_check_rejects_label_image(tmp_path):
    path = tmp_path / "labelled.tiff"
    _pyramid(path, label=True)
    with pytest.raises(DeidentificationError) as error:
        verify_deidentified(path)
    problems = " ".join(error.value.problems)
    assert "page 3" in problems
    assert "label, macro and thumbnail images are not allowed" in problems
    assert "page 3 is not tiled" in problems


def test_check_rejects_name_in_bytes(tmp_path):
    path = tmp_path / "named.tiff"
    _pyramid(path, extratags=[(269, "s", 0, "SLIDE-0042.svs", True)])  # DocumentName
    with pytest.raises(DeidentificationError) as error:
        verify_deidentified(path, forbidden_text=["slide-0042.svs"])
    problems = error.value.problems
    assert any("DocumentName (269)" in problem for problem in problems)
    assert any("1 of 1 forbidden names occur" in problem for problem in problems)
    assert "slide-0042" not in str(error.value).lower()


def _jpeg_with_comment(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, comment=b"Patient 0042")
    return buffer.getvalue()


def test_strip_jpeg_text_keeps_pixels():
    pixels = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    data = _jpeg_with_comment(pixels)
    stripped, removed = strip_jpeg_text(data)
    assert removed == 1
    assert b"Patient 0042" in data
    assert b"Patient 0042" not in stripped
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stripped))),
                          np.asarray(Image.open(io.BytesIO(data))))


def test_jpeg_tile_comments_detected_and_stripped(tmp_path):
    image = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    tiles = [_jpeg_with_comment(image[top:top + 128, left:left + 128])
             for top in (0, 128) for left in (0, 128)]
    source = tmp_path / "commented.tiff"
    with tifffile.TiffWriter(source, bigtiff=True) as writer:
        writer.write(iter(tiles), shape=(256, 256, 3), dtype=np.uint8, tile=(128, 128),
                     compression="jpeg", photometric="ycbcr", subsampling=(2, 2),
                     software=False, metadata=None, subfiletype=0)
    with pytest.raises(DeidentificationError) as error:
        verify_deidentified(source)
    assert any("comment or application segment" in problem for problem in error.value.problems)

    result = export_slide(source, tmp_path / "clean-1.tiff", identifier="clean-1")
    assert result.level0 == "copied"
    assert "4 comment or application segments of JPEG tiles" in result.removed
    assert b"Patient 0042" not in result.path.read_bytes()
    assert np.array_equal(_level0(result.path), _level0(source))
