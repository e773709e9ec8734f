"""Trained tile classifiers: ink vs no ink, and background (glass) vs foreground (tissue) ink.

``load_models(device)`` loads both shipped checkpoints once per process and device::

    models = load_models("cpu")
    ink_probability = models.ink.predict(tiles)  # tiles: (N, H, W, 3) uint8
    foreground_probability = models.background.predict(tiles)
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from pipeline.errors import InkRemovalError
from pipeline.models.classifier import InkClassifier, InkClassifierConfig, load_checkpoint
from pipeline.models.preprocess import resize_tile, tiles_to_tensor, validate_tiles

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Checkpoint file of each model, keyed by its name, which is also its training task and
# its key in Models.versions.
MODEL_FILES: dict[str, str] = {
    "ink": "ink-classifier.pt",
    "background": "background-classifier.pt",
}
DEFAULT_BATCH_SIZE = 64

__all__ = [
    "WEIGHTS_DIR",
    "InkClassifier",
    "InkClassifierConfig",
    "Models",
    "TileClassifier",
    "WeightsNotFoundError",
    "file_version",
    "load_models",
]


class WeightsNotFoundError(InkRemovalError, FileNotFoundError):
    """A model checkpoint is missing; the message names the file and the command that makes it."""

    def __init__(self, path: Path, task: str, command: str = "") -> None:
        self.path = str(path)
        self.task = task
        self.command = command or (
            f"inkremove train classifier --task {task} --data ../shared/data "
            f"--out {path} --seed 0"
        )
        super().__init__(
            f"model weights not found at {path}; train them with `{self.command}` "
            "or run `make weights`"
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[type[WeightsNotFoundError], tuple[Path, str, str]]:
        # OSError pickles its args; keep (path, task, command) so RQ workers can ship it.
        return (type(self), (Path(self.path), self.task, self.command))


class TileClassifier:
    """A trained InkClassifier with its preprocessing: uint8 tiles in, probabilities out."""

    def __init__(
        self,
        model: InkClassifier,
        *,
        name: str,
        version: str,
        device: torch.device,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.version = version
        self.device = device
        self.batch_size = batch_size
        self.input_size_px = model.config.input_size_px
        self.positive_class = model.config.class_names[-1]

    def predict(self, tiles: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Return the probability of the positive class for (N, H, W, 3) uint8 tiles, shape (N,).

        Tiles of any size are resized to the model input with area interpolation.
        """
        validate_tiles(tiles)
        if len(tiles) == 0:
            return np.zeros(0, np.float32)
        probabilities = []
        for start in range(0, len(tiles), self.batch_size):
            chunk = tiles[start : start + self.batch_size]
            resized = np.stack([resize_tile(tile, self.input_size_px) for tile in chunk])
            batch = tiles_to_tensor(resized).to(self.device, non_blocking=True)  # (B, 3, S, S)
            probabilities.append(self._positive_probability(batch))
        return np.concatenate(probabilities).astype(np.float32)

    @torch.inference_mode()
    def _positive_probability(self, batch: torch.Tensor) -> NDArray[np.float32]:
        if self.device.type == "cuda":
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                logits = self.model(batch)  # (B, C)
        else:
            logits = self.model(batch)  # (B, C)
        positive = torch.softmax(logits.float(), dim=1)[:, -1]  # (B,)
        # .cpu() waits for the GPU to finish the batch.
        return positive.cpu().numpy()


@dataclass(frozen=True)
class Models:
    """The two classifiers of the pipeline and the version of each checkpoint."""

    ink: TileClassifier  # probability that a tile contains ink
    background: TileClassifier  # probability that an inked tile contains tissue ("foreground")
    versions: dict[str, str] = field(
        default_factory=dict
    )  # "ink"/"background" -> "sha256:<12 hex>"


def file_version(path: Path) -> str:
    """Return ``"sha256:"`` and the first 12 hex digits of the file's SHA-256."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"sha256:{digest[:12]}"


def load_models(device: str | torch.device = "cpu", *, weights_dir: Path | None = None) -> Models:
    """Load both classifiers on ``device``; repeated calls in a process return the same Models.

    Raises WeightsNotFoundError naming the missing file and the command that trains it.
    """
    resolved_device = str(torch.device(device))
    folder = (weights_dir or WEIGHTS_DIR).resolve()
    return _load_models_cached(resolved_device, folder)


@functools.cache
def _load_models_cached(device: str, weights_dir: Path) -> Models:
    torch_device = torch.device(device)
    classifiers = {}
    versions = {}
    for name, filename in MODEL_FILES.items():
        path = weights_dir / filename
        if not path.is_file():
            raise WeightsNotFoundError(path, name)
        version = file_version(path)
        checkpoint = load_checkpoint(path, device=torch_device)
        classifiers[name] = TileClassifier(
            checkpoint.model, name=name, version=version, device=torch_device
        )
        versions[name] = version
        logger.info("loaded %s %s on %s", name, version, device)
    return Models(
        ink=classifiers["ink"],
        background=classifiers["background"],
        versions=versions,
    )
