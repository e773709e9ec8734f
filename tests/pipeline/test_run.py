import json
from pathlib import Path

import cv2
import large_image
import numpy as np
import openslide
import pytest
import tifffile
from PIL import Image

from pipeline import ProgressEvent, RunOptions, open_slide, run_pipeline
from pipeline.classify import ModelsUnavailableError
from pipeline.errors import InkRemovalError, RunCancelled
from pipeline.progress import STAGES
from pipeline.report import sha256_file
from tests.pipeline.conftest import FakeModels

REPORT_KEYS = {"input", "ink_found", "regions", "tiles", "timings_s", "models", "outputs",
               "pipeline_version", "device", "options"}
OUTPUT_NAMES = ["ink-mask.tiff", "report.json", "restored.tiff"]


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _stroke_areas(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (stroke core, far from the stroke) from an independent greenish-pixel rule."""
    blurred = cv2.blur(image, (9, 9)).astype(np.int16)
    # H&E is red-dominated; green ink and the grey-green parts of the stroke are not.
    greenish = (blurred[:, :, 1] - blurred[:, :, 0] > -10).astype(np.uint8)
    greenish = cv2.morphologyEx(greenish, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
    core = cv2.erode(greenish, np.ones((11, 11), np.uint8)).astype(bool)
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (121, 121))  # about 30 um at 0.25 um/px
    far = ~cv2.dilate(greenish, margin).astype(bool)
    return core, far


def test_clean_slide_report(cmu_run, shared_data):
    report, output = cmu_run
    source = shared_data / "slides" / "cmu-1-small-region.svs"
    assert set(report) >= REPORT_KEYS
    assert report["ink_found"] is False
    assert report["regions"] == []
    assert report["tiles"]["total"] == 130
    assert report["tiles"]["screened"] == 0
    assert report["tiles"]["classified_ink"] == 0
    assert report["tiles"]["changed"] == 0
    assert report["tiles"]["unchanged_mode"] == "byte-identical"
    assert report["input"]["sha256_before"] == report["input"]["sha256_after"]
    assert report["input"]["sha256_before"] == sha256_file(source)
    assert report["input"]["mpp_x"] == 0.499
    assert report["device"] == "cpu"
    assert report["models"] == {"ink": "fake", "background": "fake"}
    assert {"screen", "open", "write_restored", "total"} <= set(report["timings_s"])
    assert sorted(path.name for path in output.iterdir()) == OUTPUT_NAMES
    assert json.loads((output / "report.json").read_text()) == report
    restored = report["outputs"]["restored"]
    assert restored["path"] == str(output / "restored.tiff")
    assert restored["sha256"] == sha256_file(output / "restored.tiff")


def test_clean_slide_decodes_identically(cmu_run, shared_data):
    _, output = cmu_run
    source = shared_data / "slides" / "cmu-1-small-region.svs"
    restored = output / "restored.tiff"
    assert np.array_equal(tifffile.imread(restored), tifffile.imread(source))
    with openslide.OpenSlide(source) as before, openslide.OpenSlide(restored) as after:
        size = before.dimensions
        assert after.dimensions == size
        assert np.array_equal(np.asarray(after.read_region((0, 0), 0, size)),
                              np.asarray(before.read_region((0, 0), 0, size)))


def test_restored_opens_everywhere(cmu_run):
    _, output = cmu_run
    restored = output / "restored.tiff"
    with openslide.OpenSlide(restored) as handle:
        assert handle.properties["openslide.vendor"] == "generic-tiff"
        assert handle.dimensions == (2220, 2967)
        assert float(handle.properties["openslide.mpp-x"]) == pytest.approx(0.499)
        assert handle.level_count == 5
    with tifffile.TiffFile(restored) as tif:
        assert tif.is_bigtiff
        assert [page.subfiletype for page in tif.pages] == [0, 1, 1, 1, 1]
        assert all(page.is_tiled for page in tif.pages)
        assert tif.pages.first.shape == (2967, 2220, 3)
    metadata = large_image.open(str(restored)).getMetadata()
    assert (metadata["sizeX"], metadata["sizeY"]) == (2220, 2967)
    assert metadata["mm_x"] == pytest.approx(0.000499)
    with open_slide(restored) as slide:
        assert slide.info.mpp_x == pytest.approx(0.499)


def test_lower_levels_are_reductions(cmu_run):
    _, output = cmu_run
    with tifffile.TiffFile(output / "restored.tiff") as tif:
        levels = [page.asarray().astype(np.float32) for page in tif.pages[:3]]
    expected = levels[0]
    for level in levels[1:]:
        padded = np.pad(expected, ((0, expected.shape[0] % 2), (0, expected.shape[1] % 2),
                                   (0, 0)), mode="edge")
        expected = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, 3).mean(
            axis=(1, 3))
        assert level.shape == expected.shape
        # JPEG quality 90 on finely textured tissue: measured 2.5 levels on average.
        assert np.abs(level - expected).mean() < 3.5


def test_clean_slide_mask_is_empty(cmu_run):
    _, output = cmu_run
    with tifffile.TiffFile(output / "ink-mask.tiff") as tif:
        assert tif.pages.first.shape == (2967, 2220)
        assert len(tif.pages) == 5
        assert tif.pages.first.asarray().max() == 0


def test_clean_png_pixel_identical(lung_run, shared_data):
    report, output = lung_run
    assert report["ink_found"] is False
    assert report["tiles"]["unchanged_mode"] == "pixel-identical"
    assert report["tiles"]["changed"] == 0
    source = _rgb(shared_data / "ink" / "tile-clean-lung.png")
    assert np.array_equal(tifffile.imread(output / "restored.tiff"), source)
    with tifffile.TiffFile(output / "restored.tiff") as tif:
        assert tif.pages.first.compression == 8  # deflate: lossless like the PNG


def _check_green_run(report: dict, output: Path, shared_data: Path) -> None:
    assert report["ink_found"] is True
    assert report["tiles"]["changed"] >= 1
    assert report["tiles"]["unchanged_mode"] == "pixel-identical"
    assert all(region["kind"] in ("background", "foreground") for region in report["regions"])
    stroke = [region for region in report["regions"] if region["width"] > 100]
    assert stroke, report["regions"]
    assert min(region["x"] for region in stroke) < 250
    assert max(region["x"] + region["width"] for region in stroke) > 400

    source = _rgb(shared_data / "ink" / "tcga-green-pen.png")
    restored = tifffile.imread(output / "restored.tiff")
    changed = (restored != source).any(axis=2)
    core, far = _stroke_areas(source)
    assert core.mean() > 0.1
    assert far.mean() > 0.5
    assert changed[core].mean() > 0.98
    assert not changed[far].any()

    mask = tifffile.imread(output / "ink-mask.tiff")
    assert mask.shape == source.shape[:2]
    assert set(np.unique(mask)) == {0, 255}
    assert (mask[core] == 255).mean() > 0.95
    assert not mask[far].any()


def test_green_pen_restored_fake_classifiers(green_run_fake, shared_data):
    report, output = green_run_fake
    _check_green_run(report, output, shared_data)
    assert {region["kind"] for region in report["regions"]} == {"foreground"}
    # The restored stroke looks like H&E again: red dominates green on average.
    source = _rgb(shared_data / "ink" / "tcga-green-pen.png")
    restored = tifffile.imread(output / "restored.tiff").astype(int)
    core, _ = _stroke_areas(source)
    assert (restored[core, 0] - restored[core, 1]).mean() > 20


def test_green_pen_restored_real_classifiers(green_run, shared_data):
    report, output = green_run
    _check_green_run(report, output, shared_data)
    assert set(report["models"]) == {"ink", "background"}
    assert all(value != "fake" for value in report["models"].values())


def test_classifier_rejection_keeps_ink(shared_data, tmp_path):
    report = run_pipeline(shared_data / "ink" / "tcga-green-pen.png", tmp_path,
                          models=FakeModels(ink=0.1))
    assert report["tiles"]["screened"] == 4
    assert report["tiles"]["classified_ink"] == 0
    assert report["tiles"]["changed"] == 0
    assert report["ink_found"] is False


def test_background_ink_becomes_glass(shared_data, tmp_path):
    source = shared_data / "ink" / "tile-green-pen-on-glass.png"
    report = run_pipeline(source, tmp_path, models=FakeModels(foreground=0.1))
    assert {region["kind"] for region in report["regions"]} == {"background"}
    restored = tifffile.imread(tmp_path / "restored.tiff").astype(np.float32)
    mask = tifffile.imread(tmp_path / "ink-mask.tiff") == 255
    glass = np.array(report["screening"]["glass_rgb"], dtype=np.float32)
    assert mask.mean() > 0.5
    # The mask is the ink region; inside its feather (3 um = 6 px at the assumed
    # 0.5 um/px) the fill blends into the scan.
    interior = cv2.erode(mask.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert interior.mean() > 0.4
    assert np.abs(restored[interior] - glass).max() <= 1.0  # texture-free glass colour
    assert (glass > 230).all()


def test_progress_events_cover_the_run(shared_data, tmp_path):
    events: list[ProgressEvent] = []
    run_pipeline(shared_data / "ink" / "tcga-green-pen.png", tmp_path, models=FakeModels(),
                 progress=events.append)
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert [stage for stage in STAGES if any(event.stage == stage for event in events)] == list(
        STAGES)
    assert all(0 <= event.done <= event.total for event in events)


@pytest.mark.parametrize("stage", ["screen", "classify", "restore", "finish"])
def test_cancellation_leaves_no_outputs(shared_data, tmp_path, stage):
    def cancel(event: ProgressEvent) -> None:
        if event.stage == stage and event.done > 0:
            raise RunCancelled(f"stopped at {stage}")

    with pytest.raises(RunCancelled):
        run_pipeline(shared_data / "ink" / "tcga-green-pen.png", tmp_path, models=FakeModels(),
                     progress=cancel)
    assert list(tmp_path.iterdir()) == []


def test_cuda_requested_without_cuda(shared_data, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available on this machine")
    with pytest.raises(InkRemovalError, match="CUDA is not available"):
        run_pipeline(shared_data / "ink" / "tile-clean-lung.png", tmp_path, device="cuda")
    with pytest.raises(InkRemovalError, match="unknown device"):
        run_pipeline(shared_data / "ink" / "tile-clean-lung.png", tmp_path, device="tpu")


def test_missing_models_fail_clearly(shared_data, tmp_path, monkeypatch):
    def missing(device: str):
        raise ModelsUnavailableError("tile classifier weights are missing; train them")

    monkeypatch.setattr("pipeline.run.load_default_models", missing)
    with pytest.raises(ModelsUnavailableError, match="weights are missing"):
        run_pipeline(shared_data / "ink" / "tile-clean-lung.png", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_output_may_not_replace_input(shared_data, tmp_path):
    source = tmp_path / "restored.tiff"
    source.write_bytes((shared_data / "slides" / "boxes.tiff").read_bytes())
    with pytest.raises(InkRemovalError, match="would overwrite the input"):
        run_pipeline(source, tmp_path, models=FakeModels())
    assert source.read_bytes() == (shared_data / "slides" / "boxes.tiff").read_bytes()


def test_unreadable_slide_leaves_no_outputs(shared_data, tmp_path):
    from pipeline.errors import SlideReadError

    with pytest.raises(SlideReadError):
        run_pipeline(shared_data / "bad" / "corrupt-jpeg-tile.svs", tmp_path, models=FakeModels())
    assert list(tmp_path.iterdir()) == []


def test_lossy_source_without_copy_is_reencoded(shared_data, tmp_path):
    report = run_pipeline(shared_data / "slides" / "smaller-than-tile.svs", tmp_path,
                          models=FakeModels(), options=RunOptions(copy_unchanged_tiles=False))
    assert report["tiles"]["unchanged_mode"] == "re-encoded"
    assert report["tiles"]["unchanged_mode_reason"] == "copying unchanged tiles is turned off"
    with tifffile.TiffFile(tmp_path / "restored.tiff") as tif:
        assert tif.pages.first.compression == 7  # JPEG
        assert tif.pages.first.shape == (16, 16, 3)
