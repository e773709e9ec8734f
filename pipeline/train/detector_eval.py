"""Detector scores: average precision per class and the real pen-ink evaluation tiles.

Average precision uses all-point interpolation (as PASCAL VOC from 2010 on): the area
under the precision-recall curve after each precision is replaced by the highest
precision at any equal or higher recall. A detection is a true positive when its IoU
with a not yet matched ground-truth box of its class is at least the threshold.
Detections are matched in decreasing score order over all images together.

Real-ink tiles (never trained on) get ink boxes from the same rule as training
(``detector_data.ink_boxes``), applied to a mask that comes from elsewhere:

- ``tcga``: a 256 px grid over ``ink/tcga-green-pen.png`` and ``ink/tcga-red-pen.png``
  at full resolution, masked by ``realink.pen_colour_mask``.
- ``labelled-tiles``: the four inked 512 px tiles under ``ink/``, resized to 256 px and
  masked by the colour rule of their pen, and the clean lung tile, which has no boxes.
- ``thumbnails``: a 256 px grid over the three slide thumbnails of
  ``ink/thumbnails-with-masks``, masked by their hand-drawn masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from pipeline.models.boxes import box_iou
from pipeline.models.preprocess import resize_tile
from pipeline.train.detector_data import INK_CLASS, TILE_PX, ink_boxes
from pipeline.train.realink import TCGA_IMAGES, THUMBNAILS, pen_colour_mask
from pipeline.train.sources import read_rgb

# (file, pen colour or None for the clean tile)
REAL_TILES: tuple[tuple[str, str | None], ...] = (
    ("ink/tile-green-pen-on-tissue.png", "green"),
    ("ink/tile-green-pen-on-glass.png", "green"),
    ("ink/tile-red-pen-on-glass.png", "red"),
    ("ink/tile-red-pen-on-sparse-tissue.png", "red"),
    ("ink/tile-clean-lung.png", None),
)


def match_detections(
    detections: Sequence[NDArray[np.float32]],
    ground_truth: Sequence[NDArray[np.float32]],
    label: int,
    iou_threshold: float = 0.5,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], int]:
    """Match one class's detections to ground truth over all images.

    ``detections`` contains per image (K, 6) rows x0, y0, x1, y1, score, class and
    ``ground_truth`` per image (M, 5) rows x0, y0, x1, y1, class. Returns the scores
    of the class's detections in decreasing order, whether each is a true positive,
    and the number of ground-truth boxes of the class.
    """
    entries = []
    total = 0
    for image, (found, truth) in enumerate(zip(detections, ground_truth, strict=True)):
        total += int((truth[:, 4] == label).sum())
        for row in found[found[:, 5] == label]:
            entries.append((float(row[4]), image, row[:4]))
    entries.sort(key=lambda entry: -entry[0])

    matched = [np.zeros(int((truth[:, 4] == label).sum()), bool) for truth in ground_truth]
    truth_boxes = [truth[truth[:, 4] == label, :4] for truth in ground_truth]
    scores = np.array([entry[0] for entry in entries], np.float64)
    true_positive = np.zeros(len(entries), bool)
    for position, (_, image, box) in enumerate(entries):
        candidates = truth_boxes[image]
        if len(candidates) == 0:
            continue
        pair_iou = box_iou(torch.from_numpy(box[None, :]), torch.from_numpy(candidates))
        overlaps = pair_iou[0].double().numpy()
        # Only boxes not yet matched by a higher-scoring detection count.
        overlaps[matched[image]] = -1.0
        best = int(overlaps.argmax())
        if overlaps[best] >= iou_threshold:
            matched[image][best] = True
            true_positive[position] = True
    return scores, true_positive, total


def average_precision(true_positive: NDArray[np.bool_], ground_truth_count: int) -> float | None:
    """Return the all-point interpolated AP of detections sorted by decreasing score.

    Returns None when there is no ground truth, where AP is undefined.
    """
    if ground_truth_count == 0:
        return None
    if len(true_positive) == 0:
        return 0.0
    hits = np.cumsum(true_positive)
    recall = hits / ground_truth_count
    precision = hits / np.arange(1, len(true_positive) + 1)
    # Precision envelope: the highest precision at this recall or any higher recall.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    previous_recall = np.concatenate([[0.0], recall[:-1]])
    return float(((recall - previous_recall) * envelope).sum())


def detection_scores(
    detections: Sequence[NDArray[np.float32]],
    ground_truth: Sequence[NDArray[np.float32]],
    class_names: Sequence[str],
    *,
    iou_threshold: float = 0.5,
    operating_threshold: float | None = None,
) -> dict[str, Any]:
    """Return AP per class, their mean over classes with ground truth, and box counts.

    With ``operating_threshold``, each class also gets recall and precision of the
    detections scoring at least that much.
    """
    per_class: dict[str, dict[str, Any]] = {}
    defined = []
    for label, name in enumerate(class_names):
        scores, true_positive, total = match_detections(
            detections, ground_truth, label, iou_threshold
        )
        ap = average_precision(true_positive, total)
        entry: dict[str, Any] = {
            "ap": None if ap is None else round(ap, 4),
            "ground_truth": total,
            "detections": len(scores),
        }
        if operating_threshold is not None:
            kept = scores >= operating_threshold
            hits = int(true_positive[kept].sum())
            entry["recall"] = round(hits / total, 4) if total else None
            entry["precision"] = round(hits / int(kept.sum()), 4) if kept.any() else None
        per_class[name] = entry
        if ap is not None:
            defined.append(ap)
    return {
        "iou_threshold": iou_threshold,
        "interpolation": "all-point",
        "map": round(float(np.mean(defined)), 4) if defined else None,
        "per_class": per_class,
    }


@dataclass
class RealInkGroup:
    """Real pen-ink tiles of one origin, with ink boxes and the ink mask of each tile."""

    name: str
    tiles: NDArray[np.uint8]  # (N, 256, 256, 3)
    boxes: list[NDArray[np.float32]]  # per tile (K, 5), class INK_CLASS only
    masks: list[NDArray[np.bool_]]  # per tile (256, 256)
    items: list[str] = field(default_factory=list)  # file and crop origin of each tile


def load_real_ink_groups(data_dir: Path) -> list[RealInkGroup]:
    """Load the three real-ink groups described in the module docstring."""
    tcga = []
    for name, colour in TCGA_IMAGES:
        rgb = read_rgb(data_dir / name)
        tcga.append((name, rgb, pen_colour_mask(rgb, colour)))
    thumbnails = []
    folder = data_dir / "ink" / "thumbnails-with-masks"
    for colour in THUMBNAILS:
        rgb = read_rgb(folder / f"pen-{colour}.png")
        mask = np.asarray(read_rgb(folder / f"pen-{colour}-mask.png"))[..., 0] > 127
        thumbnails.append((f"ink/thumbnails-with-masks/pen-{colour}.png", rgb, mask))
    return [
        _grid_group("tcga", tcga),
        _labelled_tiles(data_dir),
        _grid_group("thumbnails", thumbnails),
    ]


def _labelled_tiles(data_dir: Path) -> RealInkGroup:
    tiles = []
    masks = []
    items = []
    for name, colour in REAL_TILES:
        tile = resize_tile(read_rgb(data_dir / name), TILE_PX)
        mask = pen_colour_mask(tile, colour) if colour else np.zeros((TILE_PX, TILE_PX), bool)
        tiles.append(tile)
        masks.append(mask)
        items.append(name)
    return RealInkGroup(
        "labelled-tiles", np.stack(tiles), [_ink_labels(mask) for mask in masks], masks, items
    )


def _grid_group(
    name: str, images: list[tuple[str, NDArray[np.uint8], NDArray[np.bool_]]]
) -> RealInkGroup:
    """Cut 256 px crops on a grid that also covers the right and bottom edges.

    An image smaller than a tile is padded with white glass and an empty mask.
    """
    tiles = []
    masks = []
    items = []
    for file_name, rgb, mask in images:
        height, width = mask.shape
        padding = ((0, max(TILE_PX - height, 0)), (0, max(TILE_PX - width, 0)))
        rgb = np.pad(rgb, (*padding, (0, 0)), constant_values=255)
        mask = np.pad(mask, padding, constant_values=False)
        for y in _grid_starts(height):
            for x in _grid_starts(width):
                tiles.append(np.ascontiguousarray(rgb[y : y + TILE_PX, x : x + TILE_PX]))
                masks.append(mask[y : y + TILE_PX, x : x + TILE_PX])
                items.append(f"{file_name}@{x},{y}")
    return RealInkGroup(name, np.stack(tiles), [_ink_labels(mask) for mask in masks], masks, items)


def _grid_starts(length: int) -> list[int]:
    """Return crop origins every 256 px, the last one flush with the far edge."""
    if length <= TILE_PX:
        return [0]
    starts = list(range(0, length - TILE_PX + 1, TILE_PX))
    if starts[-1] != length - TILE_PX:
        starts.append(length - TILE_PX)
    return starts


def _ink_labels(mask: NDArray[np.bool_]) -> NDArray[np.float32]:
    boxes = ink_boxes(mask)
    labelled = np.zeros((len(boxes), 5), np.float32)
    labelled[:, :4] = boxes
    labelled[:, 4] = INK_CLASS
    return labelled


def pixel_recall(
    detections: Sequence[NDArray[np.float32]],
    masks: Sequence[NDArray[np.bool_]],
    *,
    label: int,
    score_threshold: float,
) -> float | None:
    """Return the share of mask pixels inside some detected box of ``label``.

    Restoration replaces pixels inside ink boxes only, so this is the share of real ink
    that the restoration step can reach. Returns None when the masks are empty.
    """
    covered = 0
    total = 0
    for found, mask in zip(detections, masks, strict=True):
        inside = np.zeros(mask.shape, bool)
        for x0, y0, x1, y1, score, found_label in found:
            if int(found_label) != label or score < score_threshold:
                continue
            # Boxes have continuous corners; a pixel is inside when its centre is.
            inside[
                max(int(np.ceil(y0 - 0.5)), 0) : max(int(np.ceil(y1 - 0.5)), 0),
                max(int(np.ceil(x0 - 0.5)), 0) : max(int(np.ceil(x1 - 0.5)), 0),
            ] = True
        covered += int((inside & mask).sum())
        total += int(mask.sum())
    return covered / total if total else None
