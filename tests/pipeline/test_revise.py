"""Region corrections: revise_output on synthetic tiled slides made from a real pen-marked image."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pipeline import RunOptions, run_pipeline
from pipeline.corrections import InvalidCorrectionError, parse_corrections
from pipeline.errors import InkRemovalError, RunCancelled
from pipeline.geometry import Box, TileGrid
from pipeline.process import TileProcessor
from pipeline.report import sha256_file
from pipeline.revise import revise_output
from tests.pipeline.conftest import FakeModels

TILE = 256
OPTIONS = RunOptions(tile_size=TILE)


def _write_slide(path: Path, pixels: np.ndarray, **compression) -> Path:
    tifffile.imwrite(path, pixels, tile=(TILE, TILE), photometric="rgb", **compression)
    return path


@pytest.fixture(scope="module")
def pen_pixels(shared_data) -> np.ndarray:
    with Image.open(shared_data / "ink" / "tcga-green-pen.png") as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def lossless_run(pen_pixels, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A deflate tiled slide with a green pen stroke and a full run of it."""
    folder = tmp_path_factory.mktemp("lossless")
    slide = _write_slide(folder / "slide.tiff", pen_pixels, compression="adobe_deflate")
    report = run_pipeline(slide, folder / "run", models=FakeModels(), options=OPTIONS)
    assert report["tiles"]["changed"] >= 1
    return slide, folder / "run", report


@pytest.fixture(scope="module")
def jpeg_run(pen_pixels, tmp_path_factory) -> tuple[Path, Path, dict]:
    """The same slide stored as 256-pixel JPEG tiles, whose run copies unchanged tiles."""
    folder = tmp_path_factory.mktemp("jpeg")
    slide = _write_slide(folder / "slide.tiff", pen_pixels, compression="jpeg",
                         compressionargs={"level": 90})
    report = run_pipeline(slide, folder / "run", models=FakeModels(), options=OPTIONS)
    assert report["tiles"]["unchanged_mode"] == "byte-identical"
    assert report["tiles"]["changed"] >= 1
    return slide, folder / "run", report


def _stroke_box(report: dict) -> Box:
    """Return the largest ink region of a run; the pen stroke crosses tile borders."""
    region = max(report["regions"], key=lambda item: item["width"] * item["height"])
    return Box(region["x"], region["y"], region["width"], region["height"])


def _keep(box: Box) -> dict:
    return {"x": box.x, "y": box.y, "width": box.width, "height": box.height,
            "action": "keep-original"}


def _restore(box: Box, method: str = "od") -> dict:
    return {"x": box.x, "y": box.y, "width": box.width, "height": box.height,
            "action": "restore", "method": method}


def _inside(shape: tuple[int, ...], box: Box) -> np.ndarray:
    inside = np.zeros(shape[:2], dtype=bool)
    inside[box.y:box.bottom, box.x:box.right] = True
    return inside


def _raw_tiles(path: Path) -> list[bytes]:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        handle = tif.filehandle
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            handle.seek(offset)
            tiles.append(handle.read(count))
        return tiles


def _revise(slide: Path, previous: Path, output: Path, corrections: list, **kwargs) -> dict:
    kwargs.setdefault("models", FakeModels())
    return revise_output(slide, previous, output, corrections, options=OPTIONS, **kwargs)


@pytest.fixture(scope="module")
def kept_revision(lossless_run, tmp_path_factory) -> tuple[Path, dict, Box]:
    slide, previous, report = lossless_run
    box = _stroke_box(report)
    output = tmp_path_factory.mktemp("kept")
    return output, _revise(slide, previous, output, [_keep(box)]), box


def test_keep_original_puts_back_scanned_pixels(lossless_run, kept_revision, pen_pixels):
    _, previous, _ = lossless_run
    output, _, box = kept_revision
    before = tifffile.imread(previous / "restored.tiff")
    after = tifffile.imread(output / "restored.tiff")
    inside = _inside(after.shape, box)

    assert (before[inside] != pen_pixels[inside]).any()  # the run had changed the stroke
    assert np.array_equal(after[inside], pen_pixels[inside])
    assert np.array_equal(after[~inside], before[~inside])


def test_keep_original_clears_mask_inside(lossless_run, kept_revision):
    _, previous, _ = lossless_run
    output, _, box = kept_revision
    before = tifffile.imread(previous / "ink-mask.tiff")
    after = tifffile.imread(output / "ink-mask.tiff")
    inside = _inside(after.shape, box)

    assert before[inside].any()
    assert not after[inside].any()
    assert np.array_equal(after[~inside], before[~inside])


def test_revision_report(lossless_run, kept_revision):
    slide, previous, _ = lossless_run
    output, report, box = kept_revision
    grid = TileGrid(754, 631, TILE, TILE)
    touched = grid.indices_touching(box)

    assert report["kind"] == "revision"
    assert report["parent"]["path"] == str(previous.resolve())
    assert report["parent"]["restored_sha256"] == sha256_file(previous / "restored.tiff")
    assert report["parent"]["mask_sha256"] == sha256_file(previous / "ink-mask.tiff")
    assert report["corrections"] == [dict(_keep(box), tiles=touched)]
    assert report["tiles"]["touched"] == len(touched)
    assert 1 <= report["tiles"]["changed"] <= len(touched)
    assert report["tiles"]["unchanged_mode"] == "pixel-identical"
    assert report["input"]["sha256_before"] == report["input"]["sha256_after"]
    assert report["input"]["sha256_before"] == sha256_file(slide)
    assert report["outputs"]["restored"]["sha256"] == sha256_file(output / "restored.tiff")
    assert report["screening"] is None  # keep-original alone needs no screening
    # Keep-original loads no model, so the versions and method are the parent's.
    assert report["models"] == {"ink": "fake", "background": "fake"}
    assert report["models"] == report["parent"]["models"]
    assert report["restore_method"] == "od"
    assert report["parent"]["restore_method"] == "od"
    assert {"checksum_input", "checksum_parent", "write_restored", "write_mask",
            "total"} <= set(report["timings_s"])
    assert sorted(path.name for path in output.iterdir()) == [
        "ink-mask.tiff", "report.json", "restored.tiff"]


def test_revision_leaves_input_and_parent_alone(lossless_run, pen_pixels, tmp_path):
    slide, previous, report = lossless_run
    files = [slide, previous / "restored.tiff", previous / "ink-mask.tiff",
             previous / "report.json"]
    checksums = [sha256_file(path) for path in files]
    _revise(slide, previous, tmp_path, [_keep(_stroke_box(report))])
    assert [sha256_file(path) for path in files] == checksums


def test_lower_levels_follow_level0(kept_revision):
    output, _, _ = kept_revision
    with tifffile.TiffFile(output / "restored.tiff") as tif:
        level0 = tif.pages[0].asarray().astype(np.uint16)
        level1 = tif.pages[1].asarray()
    padded = np.pad(level0, ((0, level0.shape[0] % 2), (0, level0.shape[1] % 2), (0, 0)),
                    mode="edge")
    sums = padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
    assert np.array_equal(level1, ((sums + 2) // 4).astype(np.uint8))


def test_restore_again_with_od(lossless_run, kept_revision, pen_pixels, tmp_path):
    slide, first_dir, first = lossless_run
    kept_dir, _, box = kept_revision
    report = _revise(slide, kept_dir, tmp_path, [_restore(box)])

    full_run = tifffile.imread(first_dir / "restored.tiff")
    kept = tifffile.imread(kept_dir / "restored.tiff")
    restored = tifffile.imread(tmp_path / "restored.tiff")
    inside = _inside(restored.shape, box)
    # The tiles are restored from the input again with the run's decisions. The box
    # widens the candidate area a little, which moves a few pixels near the stroke.
    differs = (restored != full_run).any(axis=2)
    assert differs[inside].mean() < 0.01
    assert (restored[inside] != pen_pixels[inside]).any(axis=1).mean() > 0.3
    assert np.array_equal(restored[~inside], kept[~inside])

    mask = tifffile.imread(tmp_path / "ink-mask.tiff")
    run_mask = tifffile.imread(first_dir / "ink-mask.tiff")
    assert (mask[inside] == run_mask[inside]).mean() > 0.99
    assert np.array_equal(mask[~inside], tifffile.imread(kept_dir / "ink-mask.tiff")[~inside])
    assert report["ink_found"] is True
    assert report["screening"]["glass_rgb"] == first["screening"]["glass_rgb"]
    assert {entry["method"] for entry in report["tile_decisions"] if "method" in entry} == {"od"}


class GreyRestorer:
    """A learned-method stand-in that paints its regions mid-grey."""

    versions = {"cyclegan": "stand-in"}

    def __init__(self) -> None:
        self.calls = 0

    def restore_many(self, images, regions):
        self.calls += 1
        return [np.full(image.shape, 128.0, dtype=np.float32) for image in images]


def test_restore_method_is_passed_through(lossless_run, monkeypatch, tmp_path):
    slide, previous, report = lossless_run
    restorer = GreyRestorer()
    loaded = []

    def fake_load(method, device):
        loaded.append((method, device))
        return restorer

    seen = []
    original_restore = TileProcessor.restore

    def recording_restore(self, index, decision):
        seen.append((index, self.options.restore_method, decision.is_ink))
        return original_restore(self, index, decision)

    monkeypatch.setattr("pipeline.revise.load_restorer", fake_load)
    monkeypatch.setattr(TileProcessor, "restore", recording_restore)
    box = _stroke_box(report)
    revised = _revise(slide, previous, tmp_path, [_restore(box, "cyclegan")])

    touched = TileGrid(754, 631, TILE, TILE).indices_touching(box)
    assert loaded == [("cyclegan", "cpu")]
    assert sorted(index for index, _, _ in seen) == touched
    assert {(method, is_ink) for _, method, is_ink in seen} == {("cyclegan", True)}
    assert restorer.calls >= 1
    assert revised["corrections"][0]["method"] == "cyclegan"
    assert revised["models"] == {**report["models"], "cyclegan": "stand-in"}
    # The pixels outside the correction still come from the parent's method.
    assert revised["restore_method"] == report["restore_method"] == "od"
    restored = tifffile.imread(tmp_path / "restored.tiff")
    mask = tifffile.imread(tmp_path / "ink-mask.tiff") > 0
    inside = _inside(restored.shape, box)
    assert (restored[inside & mask] == 128).mean() > 0.5


def test_restore_without_decisions_classifies(lossless_run, tmp_path):
    slide, previous, report = lossless_run
    parent = tmp_path / "parent"
    parent.mkdir()
    for name in ("restored.tiff", "ink-mask.tiff"):
        (parent / name).write_bytes((previous / name).read_bytes())
    models = FakeModels(foreground=0.1)
    revised = _revise(slide, parent, tmp_path / "out", [_restore(_stroke_box(report))],
                      models=models)

    assert models.ink.calls >= 1
    assert models.background.calls >= 1
    assert revised["models"] == {"ink": "fake", "background": "fake"}
    kinds = {entry["kind"] for entry in revised["tile_decisions"] if entry["changed"]}
    assert kinds == {"background"}


def test_jpeg_untouched_tiles_are_byte_copies(jpeg_run, tmp_path):
    slide, previous, report = jpeg_run
    grid = TileGrid(754, 631, TILE, TILE)
    stroke = _stroke_box(report)
    whole_tile = grid.box(4)  # the centre tile, covered exactly
    corrections = [_keep(stroke), _keep(whole_tile)]
    revised = _revise(slide, previous, tmp_path, corrections)

    touched = set(grid.indices_touching(stroke)) | {4}
    before, after = _raw_tiles(previous / "restored.tiff"), _raw_tiles(tmp_path / "restored.tiff")
    source = _raw_tiles(slide)
    assert len(after) == len(before) == len(grid)
    for index in range(len(grid)):
        if index not in touched:
            assert after[index] == before[index], index
    assert after[4] == source[4]
    assert revised["tiles"]["unchanged_mode"] == "byte-identical"
    assert revised["tiles"]["copied_from_original"] >= 1


def test_jpeg_partial_keep_is_close_to_original(jpeg_run, tmp_path):
    slide, previous, report = jpeg_run
    stroke = _stroke_box(report)
    _revise(slide, previous, tmp_path, [_keep(stroke)])
    original = tifffile.imread(slide).astype(np.int16)
    before = tifffile.imread(previous / "restored.tiff").astype(np.int16)
    after = tifffile.imread(tmp_path / "restored.tiff").astype(np.int16)
    inside = _inside(after.shape, stroke)

    # Partly covered tiles are re-encoded with the input's own tables: close, not exact.
    assert np.abs(after[inside] - original[inside]).mean() < 2.0
    assert np.abs(before[inside] - original[inside]).mean() > 5.0


@pytest.mark.parametrize(("item", "message"), [
    ({"x": 700, "y": 0, "width": 100, "height": 10, "action": "keep-original"},
     "does not lie inside the slide"),
    ({"x": -1, "y": 0, "width": 10, "height": 10, "action": "keep-original"},
     "does not lie inside the slide"),
    ({"x": 0, "y": 0, "width": 0, "height": 10, "action": "keep-original"},
     "at least 1 pixel"),
    ({"x": 0.5, "y": 0, "width": 10, "height": 10, "action": "keep-original"},
     "x must be a whole number"),
    ({"x": True, "y": 0, "width": 10, "height": 10, "action": "keep-original"},
     "x must be a whole number"),
    ({"x": 0, "y": 0, "width": 10, "height": 10, "action": "erase"}, "action must be one of"),
    ({"x": 0, "y": 0, "width": 10, "height": 10, "action": "keep-original", "method": "od"},
     "method applies only to the restore action"),
    ({"x": 0, "y": 0, "width": 10, "height": 10, "action": "restore", "method": "magic"},
     "method must be one of"),
    ({"x": 0, "y": 0, "width": 10, "height": 10, "action": "restore", "colour": "red"},
     "unknown field"),
    ({"x": 0, "y": 0, "width": 10, "action": "restore"}, "missing field"),
    ("0,0,10,10", "must be an object"),
])
def test_invalid_correction_rejected(item, message):
    with pytest.raises(InvalidCorrectionError, match=message):
        parse_corrections([{"x": 1, "y": 1, "width": 5, "height": 5, "action": "keep-original"},
                           item], width=754, height=631)


def test_parse_defaults_restore_to_od():
    parsed = parse_corrections([{"x": 0, "y": 0, "width": 754, "height": 631,
                                 "action": "restore"}], width=754, height=631)
    assert parsed[0].method == "od"
    assert parsed[0].box == Box(0, 0, 754, 631)
    with pytest.raises(InvalidCorrectionError, match="no corrections"):
        parse_corrections([], width=754, height=631)


def test_invalid_correction_writes_nothing(lossless_run, tmp_path):
    slide, previous, _ = lossless_run
    corrections = [{"x": 0, "y": 600, "width": 10, "height": 40, "action": "keep-original"}]
    with pytest.raises(InvalidCorrectionError, match="correction 1"):
        _revise(slide, previous, tmp_path, corrections)
    assert list(tmp_path.iterdir()) == []


def test_revision_needs_a_new_folder(lossless_run):
    slide, previous, report = lossless_run
    with pytest.raises(InkRemovalError, match="is the previous output's folder"):
        _revise(slide, previous, previous, [_keep(_stroke_box(report))])


def test_missing_previous_output(lossless_run, tmp_path):
    slide, _, report = lossless_run
    with pytest.raises(InkRemovalError, match=r"previous output .*restored\.tiff is missing"):
        _revise(slide, tmp_path / "nothing", tmp_path / "out", [_keep(_stroke_box(report))])


def test_previous_of_another_slide_rejected(lossless_run, shared_data, tmp_path):
    _, previous, _ = lossless_run
    other = shared_data / "slides" / "cmu-1-small-region.svs"
    with pytest.raises(InkRemovalError, match="was not made from this slide"):
        _revise(other, previous, tmp_path, [_keep(Box(0, 0, 10, 10))])
    assert list(tmp_path.iterdir()) == []


def test_cancelled_revision_leaves_nothing(lossless_run, tmp_path):
    slide, previous, report = lossless_run
    stages = []

    def cancel(event):
        stages.append(event.stage)
        if event.stage == "restore" and event.done > 0:
            raise RunCancelled("stopped by the test")

    with pytest.raises(RunCancelled):
        _revise(slide, previous, tmp_path, [_restore(_stroke_box(report))], progress=cancel)
    assert list(tmp_path.iterdir()) == []
    assert stages[:3] == ["open", "open", "screen"]
