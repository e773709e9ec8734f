"""Real pen-ink images with known labels, used only to score trained classifiers.

Three groups, none of which is ever a training source:

- ``labelled-tiles``: five 512 px tiles whose file names give the labels.
- ``tcga-crops``: 128 px crops of two high-magnification H&E images with green and red
  pen. They have no hand-drawn masks, so a colour rule marks the ink (see
  ``pen_colour_mask``); crops next to the rule's edge are left out.
- ``thumbnail-crops``: 128 px crops of three slide thumbnails with hand-drawn pen masks.

For the background task, tiles without ink are left out and an inked tile is
"foreground" when at least 3% of its pixels are tissue outside the ink and "background"
when at most 0.3% are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.models.preprocess import resize_tile
from pipeline.train.sources import read_rgb, tissue_mask

CROP_PX = 128
INK_MIN_FRACTION = 0.02  # a crop with at least this share of ink pixels is "ink"
# A crop is "no ink" only when no ink pixel lies within this distance of it, because the
# faint edge of a stroke is outside both hand-drawn masks and colour rules.
CLEAN_MARGIN_PX = 32
FOREGROUND_MIN_TISSUE = 0.03
BACKGROUND_MAX_TISSUE = 0.003

# (file, ink label, foreground label or None when the tile has no ink)
LABELLED_TILES: tuple[tuple[str, int, int | None], ...] = (
    ("ink/tile-green-pen-on-tissue.png", 1, 1),
    ("ink/tile-green-pen-on-glass.png", 1, 0),
    ("ink/tile-red-pen-on-glass.png", 1, 0),
    ("ink/tile-red-pen-on-sparse-tissue.png", 1, 1),
    ("ink/tile-clean-lung.png", 0, None),
)
TCGA_IMAGES: tuple[tuple[str, str], ...] = (
    ("ink/tcga-green-pen.png", "green"),
    ("ink/tcga-red-pen.png", "red"),
)
THUMBNAILS: tuple[str, ...] = ("black", "green", "red")


@dataclass
class EvaluationGroup:
    """Real tiles of one origin with their labels for one task."""

    name: str
    tiles: NDArray[np.uint8]  # (N, 128, 128, 3)
    labels: NDArray[np.int64]  # (N,)
    items: list[str] = field(default_factory=list)  # file and crop origin of each tile


def pen_colour_mask(rgb: NDArray[np.uint8], colour: str) -> NDArray[np.bool_]:
    """Mark green or red pen on H&E by colour.

    Green pen makes a pixel about as green as it is red. Stained tissue never is, because
    eosin and haematoxylin both leave R well above G. White fat is left out. Red pen is
    far redder than eosin pink: R exceeds G by more than 110 and B by more than 70.
    """
    if colour == "green":
        blurred = cv2.blur(rgb, (15, 15)).astype(np.int16)
        return ((blurred[..., 1] - blurred[..., 0]) > -15) & (blurred[..., 0] < 190)
    if colour == "red":
        blurred = cv2.blur(rgb, (5, 5)).astype(np.int16)
        return ((blurred[..., 0] - blurred[..., 1]) > 110) & (
            (blurred[..., 0] - blurred[..., 2]) > 70
        )
    raise ValueError(f"no colour rule for {colour!r}; expected 'green' or 'red'")


def load_evaluation_groups(data_dir: Path, task: str) -> list[EvaluationGroup]:
    """Load every real-ink group for ``task`` ("ink" or "background")."""
    groups = [_labelled_tiles(data_dir, task)]
    # Both TCGA images are tissue edge to edge (tumour and fat), so their ink is foreground.
    groups.append(_masked_crops(task, "tcga-crops", _tcga_images(data_dir), all_tissue=True))
    groups.append(
        _masked_crops(task, "thumbnail-crops", _thumbnail_images(data_dir), all_tissue=False)
    )
    return [group for group in groups if len(group.labels)]


def _labelled_tiles(data_dir: Path, task: str) -> EvaluationGroup:
    tiles = []
    labels = []
    items = []
    for name, ink_label, foreground_label in LABELLED_TILES:
        label = ink_label if task == "ink" else foreground_label
        if label is None:
            continue
        tiles.append(resize_tile(read_rgb(data_dir / name), CROP_PX))
        labels.append(label)
        items.append(name)
    return EvaluationGroup("labelled-tiles", np.stack(tiles), np.asarray(labels, np.int64), items)


def _tcga_images(data_dir: Path) -> list[tuple[str, NDArray[np.uint8], NDArray[np.bool_]]]:
    images = []
    for name, colour in TCGA_IMAGES:
        rgb = read_rgb(data_dir / name)
        images.append((name, rgb, pen_colour_mask(rgb, colour)))
    return images


def _thumbnail_images(data_dir: Path) -> list[tuple[str, NDArray[np.uint8], NDArray[np.bool_]]]:
    images = []
    folder = data_dir / "ink" / "thumbnails-with-masks"
    for colour in THUMBNAILS:
        rgb = read_rgb(folder / f"pen-{colour}.png")
        mask = np.asarray(read_rgb(folder / f"pen-{colour}-mask.png"))[..., 0] > 127
        images.append((f"ink/thumbnails-with-masks/pen-{colour}.png", rgb, mask))
    return images


def _masked_crops(
    task: str,
    group_name: str,
    images: list[tuple[str, NDArray[np.uint8], NDArray[np.bool_]]],
    *,
    all_tissue: bool,
) -> EvaluationGroup:
    """Cut a 128 px grid from each image and label each crop from its ink mask."""
    tiles = []
    labels = []
    items = []
    margin = np.ones((2 * CLEAN_MARGIN_PX + 1, 2 * CLEAN_MARGIN_PX + 1), np.uint8)
    for name, rgb, ink in images:
        near_ink = cv2.dilate(ink.astype(np.uint8), margin) > 0
        # Tissue is looked for on every pixel that is not ink. Hand-drawn masks miss the
        # stroke's rim by a few pixels, so the mask is dilated by 7 px first.
        ink_rim = cv2.dilate(ink.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        tissue = np.ones_like(ink) if all_tissue else tissue_mask(rgb) & ~ink_rim
        height, width = ink.shape
        for y in range(0, height - CROP_PX + 1, CROP_PX):
            for x in range(0, width - CROP_PX + 1, CROP_PX):
                window = (slice(y, y + CROP_PX), slice(x, x + CROP_PX))
                label = _crop_label(task, ink[window], near_ink[window], tissue[window])
                if label is None:
                    continue
                tiles.append(rgb[window])
                labels.append(label)
                items.append(f"{name}@{x},{y}")
    stacked = np.stack(tiles) if tiles else np.zeros((0, CROP_PX, CROP_PX, 3), np.uint8)
    return EvaluationGroup(group_name, stacked, np.asarray(labels, np.int64), items)


def _crop_label(
    task: str,
    ink: NDArray[np.bool_],
    near_ink: NDArray[np.bool_],
    tissue: NDArray[np.bool_],
) -> int | None:
    """Return the crop's label for ``task``, or None when the crop is ambiguous."""
    has_ink = float(ink.mean()) >= INK_MIN_FRACTION
    if task == "ink":
        if has_ink:
            return 1
        return 0 if not near_ink.any() else None
    if not has_ink:
        return None
    tissue_fraction = float(tissue.mean())
    if tissue_fraction >= FOREGROUND_MIN_TISSUE:
        return 1
    if tissue_fraction <= BACKGROUND_MAX_TISSUE:
        return 0
    return None
