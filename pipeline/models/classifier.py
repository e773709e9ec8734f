"""The sequential CNN tile classifier and its self-describing checkpoint format.

The architecture follows the ink and background/foreground classifiers of Ali et al.,
"Ink removal from histopathology whole slide images by combining classification,
detection and image generation models", ISBI 2019: a small sequential CNN of about
433K trainable parameters on 128 x 128 RGB tiles with a 2-class softmax. Four
conv-batchnorm-ReLU-maxpool blocks reduce the tile to 64 x 8 x 8 features and two dense
layers classify them. The layer widths are this project's choice, sized to that
parameter count with narrow early convolutions, which are the costly ones on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.models.checkpoints import cpu_state_dict, write_checkpoint

CHECKPOINT_FORMAT = "inkweb-tile-classifier"
CHECKPOINT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class InkClassifierConfig:
    """Hyperparameters that rebuild an InkClassifier; stored inside every checkpoint."""

    input_size_px: int = 128
    in_channels: int = 3
    conv_channels: tuple[int, ...] = (8, 16, 32, 64)
    hidden_units: int = 100
    dropout: float = 0.5
    class_names: tuple[str, ...] = ("no_ink", "ink")

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.class_names)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InkClassifierConfig:
        """Rebuild a config from ``asdict`` output, where tuples may have become lists."""
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        for name in ("conv_channels", "class_names"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known)


class InkClassifier(nn.Module):
    """Sequential CNN that maps (B, 3, S, S) float tiles in [0, 1] to (B, C) logits."""

    input_mean: torch.Tensor

    def __init__(self, config: InkClassifierConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = config.in_channels
        for width in config.conv_channels:
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)

        reduced = config.input_size_px // 2 ** len(config.conv_channels)
        if reduced < 1:
            raise ValueError(
                f"input_size_px={config.input_size_px} is too small for "
                f"{len(config.conv_channels)} 2x poolings; "
                f"use at least {2 ** len(config.conv_channels)}"
            )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(channels * reduced * reduced, config.hidden_units),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout / 2),
            nn.Linear(config.hidden_units, config.num_classes),
        )
        # Centre inputs on mid-grey; H&E glass sits near 1.0 and ink pulls channels down.
        self.register_buffer("input_mean", torch.full((1, config.in_channels, 1, 1), 0.5))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Return class logits for (B, 3, S, S) tiles scaled to [0, 1]."""
        x = tiles - self.input_mean  # (B, 3, S, S)
        x = self.features(x)  # (B, 64, S/16, S/16)
        return self.head(x)  # (B, C)


def count_trainable_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of a model."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model in eval mode and the training metadata."""

    model: InkClassifier
    config: InkClassifierConfig
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: Path, model: InkClassifier, *, metadata: dict[str, Any]) -> None:
    """Write config, float32 weights and metadata to ``path`` (temporary name, then rename)."""
    state = cpu_state_dict(model)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "config": asdict(model.config),
        "state_dict": state,
        "metadata": metadata,
    }
    write_checkpoint(path, payload)


def load_checkpoint(path: Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from a checkpoint file alone, in eval mode on ``device``.

    Raises ValueError when the file is not a tile-classifier checkpoint of a known version.
    """
    # weights_only=True: the file holds only tensors and plain containers, and refusing
    # arbitrary pickled objects keeps a tampered weight file from running code.
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an InkWeb tile-classifier checkpoint; retrain it")
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {version}, expected "
            f"{CHECKPOINT_FORMAT_VERSION}; retrain it with this version of inkremove"
        )
    config = InkClassifierConfig.from_dict(payload["config"])
    model = InkClassifier(config)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(model=model, config=config, metadata=dict(payload.get("metadata", {})))
