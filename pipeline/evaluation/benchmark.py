"""The restoration and detection benchmark behind ``inkremove evaluate``.

Three parts, all on data that no shipped model was fitted on:

1. Real pairs: the blue-ink test pairs at x = 40208 (see ``real_pairs``), scored
   restored-inked-half against clean half.
2. Simulated: ``simulated_set`` cases on held-out clean tissue and glass.
3. Detection: pixel precision, recall and Dice of the screening ink mask against
   hand-drawn masks on real slide thumbnails, and the tile classifiers' accuracy on the
   held-out real ink tiles.

Each restoration method runs twice: on the pipeline's detected ink mask and on the
ground-truth mask, so detection errors and restoration errors show separately.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pipeline.evaluation.methods import (
    METHODS,
    TileContext,
    detect_ink,
    detected_region,
    tile_context,
)
from pipeline.evaluation.metrics import RestorationScores, score_restoration
from pipeline.evaluation.real_pairs import load_real_pairs
from pipeline.evaluation.simulated_set import simulated_cases
from pipeline.geometry import PixelScale
from pipeline.models import load_models
from pipeline.optical import WHITE, estimate_glass, estimate_stain_vectors, optical_density
from pipeline.options import RunOptions
from pipeline.screen import screen_image
from pipeline.train.realink import load_evaluation_groups

logger = logging.getLogger(__name__)

MaskSource = Literal["detected", "ground-truth"]
MASK_SOURCES: tuple[MaskSource, ...] = ("detected", "ground-truth")

# The paired scans are 40x (0.25 um/px); the held-out clean tiles are treated as 20x.
REAL_PAIR_MPP = 0.25
SIMULATED_MPP = 0.5
# Simulated strokes are 5 to 15 um wide at 0.5 um/px, far narrower than a real pen
# stroke (0.5 to 1 mm). On those tiles the detector therefore keeps components down to
# 50 um^2; the pipeline's default minimum is sized for real strokes.
SIMULATED_MIN_COMPONENT_UM2 = 50.0
# Ground truth of the real pairs: pixels whose OD rose by more than this along the
# blue ink's direction between the clean and the inked scan, after a 2-px blur that
# absorbs registration noise.
REAL_PAIR_MASK_OD = 0.1
BLUE_INK_DIRECTION = np.array([0.5, 0.2, 0.03]) / np.linalg.norm([0.5, 0.2, 0.03])
# The hand-drawn thumbnail masks cover slides of about 50 000 px at 0.25 um/px in about
# 1000 px, so one thumbnail pixel spans roughly 12 um (an estimate: the files record
# no resolution).
THUMBNAIL_MPP = 12.0

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class _Accumulator:
    """Running sums of one (dataset, method, mask source) cell of the table."""

    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    infinite_psnr: int = 0

    def add(self, scores: RestorationScores) -> None:
        values = scores.to_dict()
        if not self.sums:
            self.sums = dict.fromkeys(values, 0.0)
        for key, value in values.items():
            if key.startswith("psnr") and not math.isfinite(value):
                # A perfect restoration has infinite PSNR; cap it at 100 dB so that
                # the mean stays finite, and count how often that happened.
                self.infinite_psnr += key == "psnr_db"
                value = 100.0 if value > 0 else float("nan")
            if key == "outside_max_abs":
                self.sums[key] = max(self.sums[key], value)
            else:
                self.sums[key] += value
        self.count += 1

    def means(self) -> dict[str, float]:
        return {key: (value if key == "outside_max_abs" else value / self.count)
                for key, value in self.sums.items()}


def run_benchmark(data_dir: Path, *, methods: Sequence[str], simulated_count: int = 200,
                  seed: int = 0, include_detection: bool = True,
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run every method on both datasets and return a JSON-safe result."""
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    started = time.perf_counter()
    options = RunOptions()
    result: dict[str, Any] = {
        "settings": {"methods": list(methods), "simulated_count": simulated_count,
                     "seed": seed, "mask_sources": list(MASK_SOURCES),
                     "metrics": "float64 in [0, 1]; PSNR data range 1.0; SSIM Gaussian "
                                "sigma 1.5; VIFp on BT.601 luminance 0-255; outside-mask "
                                "change on the 0-255 scale"},
        "restoration": {},
    }

    # In a run, screening the whole slide provides its glass colour and stain vectors.
    # Here they come from the clean halves of the calibration pairs, because the test
    # pairs' clean halves are the reference and must not inform the method.
    calibration_clean = np.concatenate(
        [pair.clean for pair in load_real_pairs(data_dir / "paired-blue-ink", "calibration")])
    slide_glass = estimate_glass(calibration_clean)
    slide_stains = estimate_stain_vectors(optical_density(calibration_clean, slide_glass))
    real_cases = (
        (pair.name, pair.clean, pair.inked, real_pair_mask(pair.clean, pair.inked),
         tile_context(pair.inked, mpp=REAL_PAIR_MPP, options=options, glass=slide_glass,
                      stain_vectors=slide_stains))
        for pair in load_real_pairs(data_dir / "paired-blue-ink", "test"))
    result["restoration"]["real-pairs"] = _score_dataset(
        "real-pairs", real_cases, methods, progress=progress)

    simulated_options = replace(options, max_hole_area_um2=SIMULATED_MIN_COMPONENT_UM2)
    simulated = (
        (case.name, case.clean, case.inked, case.mask,
         tile_context(case.inked, mpp=SIMULATED_MPP, options=simulated_options))
        for case in simulated_cases(data_dir, count=simulated_count, seed=seed))
    result["restoration"]["simulated"] = _score_dataset(
        "simulated", simulated, methods, progress=progress, total=simulated_count)

    if include_detection:
        result["detection"] = {"thumbnails": score_thumbnail_detection(data_dir, options),
                               "classifiers": score_classifiers(data_dir)}
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result


def real_pair_mask(clean: NDArray[np.uint8], inked: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Return the ground-truth ink mask of a registered clean/inked pair."""
    excess = cv2.GaussianBlur(optical_density(inked, WHITE) - optical_density(clean, WHITE),
                              (0, 0), 2.0)  # (H, W, 3)
    return ((excess @ BLUE_INK_DIRECTION) > REAL_PAIR_MASK_OD).astype(np.uint8)


def score_thumbnail_detection(data_dir: Path, options: RunOptions) -> list[dict[str, Any]]:
    """Return pixel precision, recall and Dice of screening on the hand-masked thumbnails."""
    folder = data_dir / "ink" / "thumbnails-with-masks"
    rows = []
    for image_path in sorted(folder.glob("pen-*.png")):
        if image_path.stem.endswith("-mask"):
            continue
        mask_path = image_path.with_name(f"{image_path.stem}-mask.png")
        thumbnail = np.asarray(Image.open(image_path).convert("RGB"))
        truth = np.asarray(Image.open(mask_path).convert("L")) > 127
        screening = screen_image(thumbnail, scale=PixelScale(mpp=THUMBNAIL_MPP),
                                 downsample=1.0, options=options)
        found = screening.ink_mask
        if found.shape != truth.shape:
            found = cv2.resize(found.astype(np.uint8), truth.shape[::-1],
                               interpolation=cv2.INTER_NEAREST).astype(bool)
        rows.append({"image": image_path.name, **_overlap_scores(found, truth)})
    return rows


def score_classifiers(data_dir: Path) -> list[dict[str, Any]]:
    """Return the shipped tile classifiers' accuracy on the held-out real ink tiles."""
    models = load_models("cpu")
    rows = []
    for task, classifier in (("ink", models.ink), ("background", models.background)):
        for group in load_evaluation_groups(data_dir, task):
            predicted = (classifier.predict(group.tiles) >= 0.5).astype(np.int64)
            rows.append({"classifier": task, "group": group.name,
                         "tiles": len(group.labels),
                         "accuracy": round(float((predicted == group.labels).mean()), 4)})
    return rows


def _overlap_scores(found: NDArray[np.bool_], truth: NDArray[np.bool_]) -> dict[str, float]:
    true_positive = float((found & truth).sum())
    found_count, truth_count = float(found.sum()), float(truth.sum())
    precision = true_positive / found_count if found_count else float("nan")
    recall = true_positive / truth_count if truth_count else float("nan")
    dice = 2 * true_positive / (found_count + truth_count) if found_count + truth_count else 1.0
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "dice": round(dice, 4)}


def _score_dataset(name: str,
                   cases: Iterable[tuple[str, NDArray[np.uint8], NDArray[np.uint8],
                                         NDArray[np.uint8], TileContext]],
                   methods: Sequence[str], *, progress: ProgressCallback | None,
                   total: int | None = None) -> dict[str, Any]:
    cells: dict[tuple[str, str], _Accumulator] = defaultdict(_Accumulator)
    detection_overlap: dict[str, float] = defaultdict(float)
    count = 0
    for case_name, clean, inked, truth, context in cases:
        found = detect_ink(inked, context).mask
        for key, value in _overlap_scores(found, truth != 0).items():
            detection_overlap[key] += 0.0 if math.isnan(value) else value
        region = detected_region(inked, context).astype(np.uint8)
        masks = {"detected": region, "ground-truth": truth}
        for method in methods:
            for source, mask in masks.items():
                restored = METHODS[method](inked, mask, context)
                cells[(method, source)].add(
                    score_restoration(clean, inked, restored, ink_mask=truth, allowed_mask=mask))
        count += 1
        if progress is not None:
            progress(name, count, total or count)
        logger.debug("scored %s", case_name)
    rows = []
    for (method, source), accumulator in cells.items():
        means = accumulator.means()
        rows.append({"method": method, "mask": source, "cases": accumulator.count,
                     "perfect_cases": accumulator.infinite_psnr,
                     **{key: round(value, 4) for key, value in means.items()}})
    return {"cases": count,
            "detected_mask_vs_truth": {key: round(value / max(count, 1), 4)
                                       for key, value in detection_overlap.items()},
            "rows": rows}


def to_markdown(result: dict[str, Any], *, command: str) -> str:
    """Render a benchmark result as the Markdown page kept in docs/quality.md."""
    lines = ["# Restoration quality", "",
             f"Made by `{command}` in {result['elapsed_s']} s.", "",
             f"Metrics: {result['settings']['metrics']}. PSNR of a perfect restoration is "
             "infinite; such cases count as 100 dB in the means. PSNR in ink is measured "
             "over the ground-truth ink mask; the outside columns measure change outside "
             "the mask that the method was given, which is zero for every method: each "
             "blends its result in with a feather inside that mask. The detected mask is "
             "the region a pipeline run restores: the colour-rule ink mask grown by the "
             "run options' dilation_um; its precision, recall and Dice are those of the "
             "ink mask before growing.", "",
             "Data: the real pairs are the 8 blue-ink pairs at x = 40208 of "
             "paired-blue-ink (glass and stain vectors from the clean halves of the 8 "
             "calibration pairs at x = 39952; x = 40080 is never used). The simulated "
             "tiles are 256x256 crops of clean/he-source.png, clean/he-target.png and "
             "clean/tissue-level0-7352-11762-7864-12274.png (tissue and tissue edge) and "
             "clean/no-tissue2.png (glass), none of which any shipped model trained on, "
             "with simulated ink of four colours, two strengths and six stroke shapes.", ""]
    titles = {"real-pairs": "Real blue-ink pairs (8 test pairs at x = 40208)",
              "simulated": f"Simulated ink ({result['settings']['simulated_count']} tiles)"}
    for dataset, section in result["restoration"].items():
        overlap = section["detected_mask_vs_truth"]
        lines += [f"## {titles.get(dataset, dataset)}", "",
                  f"Detected mask against ground truth (mean per tile): precision "
                  f"{overlap['precision']:.3f}, recall {overlap['recall']:.3f}, "
                  f"Dice {overlap['dice']:.3f}.", "",
                  "| method | mask | PSNR (dB) | PSNR in ink (dB) | SSIM | VIF "
                  "| outside max | outside mean |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in section["rows"]:
            lines.append(
                f"| {row['method']} | {row['mask']} | {row['psnr_db']:.2f} "
                f"| {row['psnr_ink_db']:.2f} | {row['ssim']:.3f} | {row['vif']:.3f} "
                f"| {row['outside_max_abs']:.0f} | {row['outside_mean_abs']:.3f} |")
        lines.append("")
    if "detection" in result:
        lines += ["## Detection on real thumbnails with hand-drawn masks", "",
                  "Screening's pixel ink mask against the hand-drawn pen masks.", "",
                  "| image | precision | recall | Dice |", "|---|---|---|---|"]
        for row in result["detection"]["thumbnails"]:
            lines.append(f"| {row['image']} | {row['precision']:.3f} | {row['recall']:.3f} "
                         f"| {row['dice']:.3f} |")
        lines += ["", "## Tile classifiers on held-out real ink", "",
                  "The shipped weights on real pen-ink tiles that no model trained on "
                  "(see docs/models.md for the labelling).", "",
                  "| classifier | group | tiles | accuracy |", "|---|---|---|---|"]
        for row in result["detection"]["classifiers"]:
            lines.append(f"| {row['classifier']} | {row['group']} | {row['tiles']} "
                         f"| {row['accuracy']:.3f} |")
        lines.append("")
    return "\n".join(lines)
