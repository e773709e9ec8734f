"""Tile classification: does a tile hold ink, and is that ink over tissue or only on glass.

The classifiers come from ``pipeline.models`` (``load_models(device)``), trained by
``inkremove train classifier``. The pipeline refuses to run without them rather than
silently skipping the stage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from pipeline.errors import InkRemovalError

logger = logging.getLogger(__name__)

InkKind = Literal["background", "foreground"]


class TileClassifier(Protocol):
    """One classifier: ``predict`` maps (N, H, W, 3) uint8 tiles to (N,) probabilities."""

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """Return the probability of the positive class for each tile."""


class Models(Protocol):
    """The loaded tile classifiers and their weight versions."""

    @property
    def ink(self) -> TileClassifier:
        """Classifier of "tile holds ink"."""

    @property
    def background(self) -> TileClassifier:
        """Classifier of "the ink lies over tissue" (foreground ink)."""

    @property
    def versions(self) -> dict[str, str]:
        """Weight version per classifier name."""


class ModelsUnavailableError(InkRemovalError):
    """The tile classifiers or their weights are missing."""


@dataclass(frozen=True)
class TileDecision:
    """The classifiers' verdict on one level-0 tile."""

    index: int
    ink_probability: float
    foreground_probability: float
    ink_fraction: float  # share of the tile covered by the colour-rule ink mask
    is_ink: bool
    kind: InkKind

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {"index": self.index, "ink_probability": round(self.ink_probability, 4),
                "foreground_probability": round(self.foreground_probability, 4),
                "ink_fraction": round(self.ink_fraction, 4), "is_ink": self.is_ink,
                "kind": self.kind}


def load_default_models(device: str) -> Models:
    """Load the tile classifiers from ``pipeline.models`` onto ``device``.

    Raises ModelsUnavailableError naming what is missing and how to produce it.
    """
    try:
        from pipeline.models import load_models
    except ImportError as exc:
        raise ModelsUnavailableError(
            f"the tile classifiers (pipeline.models) are not installed: {exc}; install the "
            "complete inkweb package") from exc
    try:
        models: Models = load_models(device)
    except FileNotFoundError as exc:
        if isinstance(exc, InkRemovalError):
            raise  # already names the missing file and the training command
        raise ModelsUnavailableError(
            f"tile classifier weights are missing ({exc}); train them with "
            "`inkremove train classifier` or reinstall the package with its weights") from exc
    return models


def predict_tiles(models: Models, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (ink, foreground) probabilities, each (N,), for windows (N, H, W, 3) uint8."""
    if len(windows) == 0:
        empty = np.zeros(0, dtype=np.float32)
        return empty, empty
    ink = np.asarray(models.ink.predict(windows), dtype=np.float32).reshape(-1)
    foreground = np.asarray(models.background.predict(windows), dtype=np.float32).reshape(-1)
    if ink.shape != (len(windows),) or foreground.shape != (len(windows),):
        raise InkRemovalError(f"classifiers returned shapes {ink.shape} and {foreground.shape} "
                              f"for {len(windows)} tiles; expected ({len(windows)},)")
    return ink, foreground


def decide(index: int, *, ink_probability: float, foreground_probability: float,
           ink_fraction: float, ink_threshold: float, foreground_threshold: float,
           min_ink_fraction: float, require_classifier: bool) -> TileDecision:
    """Combine the colour-rule mask and the classifiers into one tile decision.

    A tile is processed when its mask covers at least ``min_ink_fraction`` and, if
    ``require_classifier`` is set, the ink classifier agrees.
    """
    has_mask = ink_fraction >= min_ink_fraction
    classifier_agrees = ink_probability >= ink_threshold
    is_ink = has_mask and (classifier_agrees or not require_classifier)
    kind: InkKind = "foreground" if foreground_probability >= foreground_threshold else "background"
    return TileDecision(index=index, ink_probability=ink_probability,
                        foreground_probability=foreground_probability,
                        ink_fraction=ink_fraction, is_ink=is_ink, kind=kind)
