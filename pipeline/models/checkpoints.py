"""Self-describing checkpoints of the image-to-image networks.

A checkpoint contains the architecture name, its config, the weights (float32, or float16
to halve the file) and training metadata, so that ``load_network`` rebuilds the model
from the file alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from pipeline.models.generators import CONFIGS, NETWORKS, Architecture

CHECKPOINT_FORMAT = "inkweb-image-network"
CHECKPOINT_FORMAT_VERSION = 1


def cpu_state_dict(model: nn.Module, *, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Return contiguous CPU copies of a model's tensors; ``dtype`` casts the float ones."""
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu", copy=True).contiguous()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[name] = tensor
    return state


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save ``payload`` with torch.save under a temporary name, then rename it to ``path``.

    A reader never sees a half-written checkpoint.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(payload, temporary)
    temporary.replace(path)


@dataclass
class NetworkCheckpoint:
    """A loaded network in eval mode with its architecture, config and metadata."""

    model: nn.Module
    architecture: Architecture
    config: Any
    metadata: dict[str, Any] = field(default_factory=dict)


def save_network(path: Path, model: nn.Module, *, architecture: Architecture,
                 metadata: dict[str, Any], half: bool = False) -> None:
    """Write ``model`` with its config to ``path`` (temporary name, then rename).

    ``half`` stores the weights as float16; they are widened to float32 on loading.
    """
    config = cast(Any, model).config
    if not isinstance(config, CONFIGS[architecture]):
        raise TypeError(f"model config {type(config).__name__} does not match {architecture}")
    state = cpu_state_dict(model, dtype=torch.float16 if half else torch.float32)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "architecture": architecture,
        "config": asdict(config),
        "state_dict": state,
        "metadata": metadata,
    }
    write_checkpoint(path, payload)


def load_network(path: Path, *, device: str | torch.device = "cpu",
                 expected: Architecture | None = None) -> NetworkCheckpoint:
    """Rebuild a network from its checkpoint, in float32 eval mode on ``device``.

    Raises ValueError when the file is not an image-network checkpoint of a known
    version, or not of the ``expected`` architecture.
    """
    # weights_only=True refuses pickled objects, so a tampered file cannot run code.
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an InkWeb image-network checkpoint; retrain it")
    if payload.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format version {payload.get('format_version')},"
                         f" expected {CHECKPOINT_FORMAT_VERSION}; retrain it")
    architecture = payload.get("architecture")
    if architecture not in CONFIGS:
        raise ValueError(f"{path} contains an unknown architecture {architecture!r}; retrain it")
    if expected is not None and architecture != expected:
        raise ValueError(f"{path} contains a {architecture}, expected a {expected}")
    config_type = CONFIGS[architecture]
    known = {item.name for item in fields(config_type)}
    config = config_type(**{key: value for key, value in payload["config"].items()
                            if key in known})
    model = NETWORKS[architecture](config)
    state = {name: tensor.float() if tensor.is_floating_point() else tensor
             for name, tensor in payload["state_dict"].items()}
    model.load_state_dict(state)
    model.to(device).eval()
    return NetworkCheckpoint(model=model, architecture=architecture, config=config,
                             metadata=dict(payload.get("metadata", {})))
