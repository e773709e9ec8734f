"""A single-shot multi-scale box detector for ink and dense-cell clusters, after YOLOv3.

The design follows Redmon and Farhadi, "YOLOv3: An Incremental Improvement",
arXiv:1804.02767 (2018). A residual convolutional backbone feeds a top-down neck that
upsamples coarse features and concatenates them with finer ones. Heads at strides 8,
16 and 32 predict ``(tx, ty, tw, th, objectness, class logits)`` for each of three
anchor shapes per cell. A box decodes as

    centre = (sigmoid(tx, ty) + cell index) * stride,   size = anchor * exp(tw, th)

and its class score is sigmoid(objectness) * sigmoid(class logit), one independent
probability per class. Two backbones share the neck and head:

- ``darknet53``: Darknet-53 of the paper, 52 convolutions with 1, 2, 8, 8 and 4
  residual blocks at 64 to 1024 channels, the detector of Ali et al., ISBI 2019.
- ``compact``: the same block structure with one residual block per stage, 16 to 128
  channels and a stride-2 stem, small enough to train on a 2-core CPU.

``load_detector(device)`` loads the shipped checkpoint once per process and device::

    detector = load_detector("cpu")
    boxes = detector.detect(tiles)  # tiles: (N, H, W, 3) uint8; per tile a list of DetectedBox

The loss lives with the training code in ``pipeline.train.detector_loss``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from pipeline.models import WEIGHTS_DIR, WeightsNotFoundError, file_version
from pipeline.models.boxes import batched_nms
from pipeline.models.checkpoints import cpu_state_dict, write_checkpoint
from pipeline.models.preprocess import resize_tile, tiles_to_tensor, validate_tiles

logger = logging.getLogger(__name__)

DETECTOR_FILE = "detector.pt"
DEFAULT_BATCH_SIZE = 16
CHECKPOINT_FORMAT = "inkweb-detector"
CHECKPOINT_FORMAT_VERSION = 1

Backbone = Literal["compact", "darknet53"]
BACKBONES: tuple[str, ...] = ("compact", "darknet53")
STRIDES: tuple[int, int, int] = (8, 16, 32)

# Anchor (width, height) pairs of YOLOv3's configuration (yolov3.cfg: 10,13 ... 373,326),
# scaled from its 416 px input to 256 px and rounded. Training replaces them with k-means anchors of
# its own boxes; these are the defaults of a config built by hand.
DEFAULT_ANCHORS_PX: tuple[tuple[tuple[float, float], ...], ...] = (
    ((6.0, 8.0), (10.0, 18.0), (20.0, 14.0)),
    ((18.0, 38.0), (38.0, 28.0), (36.0, 73.0)),
    ((71.0, 55.0), (96.0, 122.0), (230.0, 201.0)),
)

# (stem channels, stem stride, ((channels, residual blocks) per stage)). Each stage
# starts with a stride-2 convolution; the last three stages feed strides 8, 16 and 32.
BACKBONE_LAYOUTS: dict[str, tuple[int, int, tuple[tuple[int, int], ...]]] = {
    "darknet53": (32, 1, ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))),
    "compact": (16, 2, ((32, 1), (64, 1), (96, 1), (128, 1))),
}
# Pairs of (3x3, 1x1) convolutions after the first 1x1 of each neck block: YOLOv3 has 2.
NECK_DEPTHS: dict[str, int] = {"darknet53": 2, "compact": 1}
# Objectness logits start at the log-odds of this probability, so that the thousands
# of empty anchors do not swamp the first training steps.
OBJECTNESS_PRIOR = 0.01
MAX_LOG_SCALE = 4.0  # exp(tw) is capped at e^4 times the anchor when decoding
PRE_NMS_TOP_K = 1000


@dataclass(frozen=True)
class DetectorConfig:
    """Hyperparameters that rebuild a DetectorNet; stored inside every checkpoint.

    ``anchors_px`` gives three (width, height) anchors in input pixels for each of the
    strides 8, 16 and 32, smallest first. ``score_threshold``, ``nms_iou_threshold``
    and ``max_detections`` are the inference defaults of ``Detector``.
    """

    backbone: Backbone = "compact"
    input_size_px: int = 256
    class_names: tuple[str, ...] = ("ink", "cluster")
    anchors_px: tuple[tuple[tuple[float, float], ...], ...] = DEFAULT_ANCHORS_PX
    width_multiplier: float = 1.0
    score_threshold: float = 0.3
    nms_iou_threshold: float = 0.45
    max_detections: int = 100

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; expected one of {', '.join(BACKBONES)}"
            )
        if self.input_size_px < 32 or self.input_size_px % 32:
            raise ValueError(
                f"input_size_px must be a positive multiple of 32, got {self.input_size_px}"
            )
        if len(self.anchors_px) != len(STRIDES) or len({len(a) for a in self.anchors_px}) != 1:
            raise ValueError(
                f"anchors_px needs the same number of (width, height) pairs for each of "
                f"{len(STRIDES)} strides, got {self.anchors_px}"
            )
        if not self.class_names:
            raise ValueError("class_names must name at least one class")
        if self.width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier}")

    @property
    def num_classes(self) -> int:
        """Number of box classes."""
        return len(self.class_names)

    @property
    def anchors_per_scale(self) -> int:
        """Number of anchor shapes at each stride."""
        return len(self.anchors_px[0])

    @property
    def outputs_per_anchor(self) -> int:
        """Predicted values per anchor: 4 box terms, objectness and one logit per class."""
        return 5 + self.num_classes

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectorConfig:
        """Rebuild a config from ``asdict`` output, where tuples may have become lists."""
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        if "class_names" in known:
            known["class_names"] = tuple(known["class_names"])
        if "anchors_px" in known:
            known["anchors_px"] = tuple(
                tuple((float(w), float(h)) for w, h in scale) for scale in known["anchors_px"]
            )
        return cls(**known)


class ConvBlock(nn.Sequential):
    """Convolution without bias, batch normalisation and leaky ReLU (slope 0.1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.1, inplace=True),
        )


class ResidualBlock(nn.Module):
    """Darknet residual block: 1x1 to half the channels, 3x3 back, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvBlock(channels, channels // 2, 1)
        self.expand = ConvBlock(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` plus the block's residual, same shape."""
        return x + self.expand(self.reduce(x))


class DarknetBackbone(nn.Module):
    """A stem convolution and stages of (stride-2 convolution, residual blocks).

    ``forward`` returns the outputs of the last three stages, at strides 8, 16 and 32.
    """

    def __init__(self, backbone: str, width_multiplier: float) -> None:
        super().__init__()
        stem_channels, stem_stride, stages = BACKBONE_LAYOUTS[backbone]
        channels = _scaled(stem_channels, width_multiplier)
        self.stem = ConvBlock(3, channels, 3, stride=stem_stride)
        self.stages = nn.ModuleList()
        widths = []
        for stage_channels, blocks in stages:
            width = _scaled(stage_channels, width_multiplier)
            layers: list[nn.Module] = [ConvBlock(channels, width, 3, stride=2)]
            layers += [ResidualBlock(width) for _ in range(blocks)]
            self.stages.append(nn.Sequential(*layers))
            channels = width
            widths.append(width)
        self.out_channels: tuple[int, int, int] = (widths[-3], widths[-2], widths[-1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (C3, C4, C5) feature maps at strides 8, 16 and 32."""
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features[-3], features[-2], features[-1]


class NeckBlock(nn.Module):
    """YOLOv3's alternating 1x1/3x3 convolutions, then a 3x3 and a 1x1 prediction layer."""

    def __init__(
        self, in_channels: int, width: int, depth: int, *, anchors: int, outputs_per_anchor: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(in_channels, width, 1)]
        for _ in range(depth):
            layers += [ConvBlock(width, 2 * width, 3), ConvBlock(2 * width, width, 1)]
        self.features = nn.Sequential(*layers)
        self.head = ConvBlock(width, 2 * width, 3)
        self.prediction = nn.Conv2d(2 * width, anchors * outputs_per_anchor, 1, bias=True)
        # Objectness logits start at the log-odds of OBJECTNESS_PRIOR, box and class
        # logits at 0.
        bias = torch.zeros(anchors, outputs_per_anchor)
        bias[:, 4] = math.log(OBJECTNESS_PRIOR / (1.0 - OBJECTNESS_PRIOR))
        self.prediction.bias = nn.Parameter(bias.view(-1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (features passed to the next finer scale, raw predictions)."""
        features = self.features(x)
        return features, self.prediction(self.head(features))


class DetectorNet(nn.Module):
    """Backbone, FPN-style neck and heads: (B, 3, S, S) tiles in [0, 1] to raw predictions.

    ``forward`` returns one tensor per stride (8, 16, 32), each (B, A, S/stride,
    S/stride, 5 + C): tx, ty, tw, th, objectness logit and C class logits.
    """

    input_mean: torch.Tensor

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = DarknetBackbone(config.backbone, config.width_multiplier)
        c3, c4, c5 = self.backbone.out_channels
        depth = NECK_DEPTHS[config.backbone]
        shape = {
            "anchors": config.anchors_per_scale,
            "outputs_per_anchor": config.outputs_per_anchor,
        }
        n3, n4, n5 = c3 // 2, c4 // 2, c5 // 2
        self.neck5 = NeckBlock(c5, n5, depth, **shape)
        self.lateral5 = ConvBlock(n5, n4, 1)
        self.neck4 = NeckBlock(c4 + n4, n4, depth, **shape)
        self.lateral4 = ConvBlock(n4, n3, 1)
        self.neck3 = NeckBlock(c3 + n3, n3, depth, **shape)
        # Centre inputs on mid-grey, as the tile classifier does.
        self.register_buffer("input_mean", torch.full((1, 3, 1, 1), 0.5))

    def forward(self, tiles: torch.Tensor) -> list[torch.Tensor]:
        """Return raw predictions per stride for (B, 3, S, S) tiles scaled to [0, 1]."""
        c3, c4, c5 = self.backbone(tiles - self.input_mean)
        features5, raw5 = self.neck5(c5)  # (B, n5, S/32, S/32)
        upsampled = F.interpolate(self.lateral5(features5), scale_factor=2.0, mode="nearest")
        features4, raw4 = self.neck4(torch.cat([upsampled, c4], dim=1))  # (B, n4, S/16, S/16)
        upsampled = F.interpolate(self.lateral4(features4), scale_factor=2.0, mode="nearest")
        _, raw3 = self.neck3(torch.cat([upsampled, c3], dim=1))  # (B, n3, S/8, S/8)
        return [self._split_anchors(raw) for raw in (raw3, raw4, raw5)]

    def _split_anchors(self, raw: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = raw.shape
        anchors = self.config.anchors_per_scale
        shaped = raw.view(batch, anchors, self.config.outputs_per_anchor, height, width)
        return shaped.permute(0, 1, 3, 4, 2).contiguous()  # (B, A, H, W, 5 + C)


def _scaled(channels: int, multiplier: float) -> int:
    """Scale a channel count, rounded to an even number of at least 4."""
    return max(4, 2 * round(channels * multiplier / 2))


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of a model."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def anchor_grid(config: DetectorConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return the anchors as a (scales, A, 2) tensor of (width, height) in input pixels."""
    return torch.tensor(config.anchors_px, dtype=torch.float32, device=device)


def decode_predictions(outputs: list[torch.Tensor], config: DetectorConfig) -> torch.Tensor:
    """Turn raw per-stride predictions into (B, N, 5 + C) boxes over all N anchors.

    Each row is x0, y0, x1, y1 in input pixels, the objectness probability and the C
    class probabilities (not yet multiplied by objectness).
    """
    anchors = anchor_grid(config, outputs[0].device)
    decoded = []
    for scale, (raw, stride) in enumerate(zip(outputs, STRIDES, strict=True)):
        batch = raw.shape[0]
        boxes = decode_boxes(raw.float(), anchors[scale], stride)  # (B, A, H, W, 4)
        probabilities = torch.sigmoid(raw[..., 4:].float())  # (B, A, H, W, 1 + C)
        rows = torch.cat([boxes, probabilities], dim=-1)  # (B, A, H, W, 5 + C)
        decoded.append(rows.view(batch, -1, config.outputs_per_anchor))
    return torch.cat(decoded, dim=1)


def decode_boxes(raw: torch.Tensor, anchors: torch.Tensor, stride: int) -> torch.Tensor:
    """Return (B, A, H, W, 4) xyxy boxes in input pixels from raw (B, A, H, W, 5 + C)."""
    _, _, height, width, _ = raw.shape
    rows = torch.arange(height, device=raw.device, dtype=raw.dtype)
    columns = torch.arange(width, device=raw.device, dtype=raw.dtype)
    centre_x = (torch.sigmoid(raw[..., 0]) + columns.view(1, 1, 1, width)) * stride
    centre_y = (torch.sigmoid(raw[..., 1]) + rows.view(1, 1, height, 1)) * stride
    box_width = anchors[:, 0].view(1, -1, 1, 1) * torch.exp(raw[..., 2].clamp(max=MAX_LOG_SCALE))
    box_height = anchors[:, 1].view(1, -1, 1, 1) * torch.exp(raw[..., 3].clamp(max=MAX_LOG_SCALE))
    return torch.stack(
        [
            centre_x - box_width / 2,
            centre_y - box_height / 2,
            centre_x + box_width / 2,
            centre_y + box_height / 2,
        ],
        dim=-1,
    )


def select_boxes(
    decoded: torch.Tensor,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    image_size_px: float | None = None,
) -> list[torch.Tensor]:
    """Threshold, class-wise NMS and cap decoded (B, N, 5 + C) predictions.

    Returns per image a (K, 6) tensor of x0, y0, x1, y1, score, class index in
    decreasing score order, where score = objectness * class probability. A box may
    appear once per class whose score passes the threshold, as YOLOv3's independent
    class probabilities allow. With ``image_size_px`` boxes are clipped to the image.
    """
    results = []
    for image in decoded:
        boxes = image[:, :4]
        scores = image[:, 4:5] * image[:, 5:]  # (N, C)
        anchor_index, class_index = torch.nonzero(scores > score_threshold, as_tuple=True)
        candidate_scores = scores[anchor_index, class_index]
        if candidate_scores.numel() > PRE_NMS_TOP_K:
            top = torch.topk(candidate_scores, PRE_NMS_TOP_K).indices
            anchor_index, class_index = anchor_index[top], class_index[top]
            candidate_scores = candidate_scores[top]
        candidate_boxes = boxes[anchor_index]
        if image_size_px is not None:
            candidate_boxes = candidate_boxes.clamp(min=0.0, max=float(image_size_px))
        kept = batched_nms(candidate_boxes, candidate_scores, class_index, iou_threshold)
        kept = kept[:max_detections]
        results.append(
            torch.cat(
                [
                    candidate_boxes[kept],
                    candidate_scores[kept, None],
                    class_index[kept, None].to(candidate_boxes.dtype),
                ],
                dim=1,
            )
        )
    return results


@dataclass
class DetectorCheckpoint:
    """A loaded detector checkpoint: the rebuilt model in eval mode and its metadata."""

    model: DetectorNet
    config: DetectorConfig
    metadata: dict[str, Any] = field(default_factory=dict)


def save_detector_checkpoint(path: Path, model: DetectorNet, *, metadata: dict[str, Any]) -> None:
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


def load_detector_checkpoint(
    path: Path, *, device: str | torch.device = "cpu"
) -> DetectorCheckpoint:
    """Rebuild the detector from a checkpoint file alone, in eval mode on ``device``.

    Raises ValueError when the file is not a detector checkpoint of a known version.
    """
    # weights_only=True: the file holds only tensors and plain containers, and refusing
    # arbitrary pickled objects keeps a tampered weight file from running code.
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an InkWeb detector checkpoint; retrain it")
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"{path} has detector checkpoint format version {version}, expected "
            f"{CHECKPOINT_FORMAT_VERSION}; retrain it with this version of inkremove"
        )
    config = DetectorConfig.from_dict(payload["config"])
    model = DetectorNet(config)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    metadata = dict(payload.get("metadata", {}))
    return DetectorCheckpoint(model=model, config=config, metadata=metadata)


class DetectorWeightsNotFoundError(WeightsNotFoundError):
    """The detector checkpoint is missing; the message names the file and the training command."""

    def __init__(self, path: Path, task: str = "detector", command: str = "") -> None:
        super().__init__(
            path,
            task,
            command or f"inkremove train detector --data ../shared/data --out {path} --seed 0",
        )


@dataclass(frozen=True)
class DetectedBox:
    """One detection in the pixel coordinates of the tile passed to ``Detector.detect``."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float  # objectness probability times class probability, 0..1
    label: str  # a class name of the detector, "ink" or "cluster" for the shipped weights


class Detector:
    """A trained DetectorNet with its preprocessing: uint8 tiles in, boxes per tile out.

    Thresholds default to those stored in the checkpoint's config. On a CPU, ``detect``
    runs torch with ``threads`` threads (default: every CPU this process may use) and
    restores the previous count afterwards. On CUDA it runs under float16 autocast.
    """

    def __init__(
        self,
        model: DetectorNet,
        *,
        version: str,
        device: torch.device,
        batch_size: int = DEFAULT_BATCH_SIZE,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        threads: int | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.config = model.config
        self.version = version
        self.device = device
        self.batch_size = batch_size
        self.score_threshold = (
            self.config.score_threshold if score_threshold is None else score_threshold
        )
        self.iou_threshold = self.config.nms_iou_threshold
        if iou_threshold is not None:
            self.iou_threshold = iou_threshold
        self.threads = threads or available_cpus()

    @property
    def class_names(self) -> tuple[str, ...]:
        """Box labels the model predicts, in class-index order."""
        return self.config.class_names

    def detect(self, tiles: NDArray[np.uint8]) -> list[list[DetectedBox]]:
        """Return the boxes of each (N, H, W, 3) uint8 tile, highest score first.

        Tiles of any size are resized to the square model input with area
        interpolation, and boxes are scaled back to each tile's own pixels.
        """
        validate_tiles(tiles)
        if len(tiles) == 0:
            return []
        height, width = tiles.shape[1:3]
        scale_x = width / self.config.input_size_px
        scale_y = height / self.config.input_size_px
        results: list[list[DetectedBox]] = []
        with _torch_threads(self.threads if self.device.type == "cpu" else None):
            for start in range(0, len(tiles), self.batch_size):
                chunk = tiles[start : start + self.batch_size]
                resized = np.stack([resize_tile(tile, self.config.input_size_px) for tile in chunk])
                batch = tiles_to_tensor(resized).to(self.device, non_blocking=True)  # (B, 3, S, S)
                for rows in self._detect_batch(batch):
                    results.append(
                        [
                            DetectedBox(
                                x0=x0 * scale_x,
                                y0=y0 * scale_y,
                                x1=x1 * scale_x,
                                y1=y1 * scale_y,
                                score=score,
                                label=self.config.class_names[int(label)],
                            )
                            for x0, y0, x1, y1, score, label in rows
                        ]
                    )
        return results

    @torch.inference_mode()
    def _detect_batch(self, batch: torch.Tensor) -> list[list[list[float]]]:
        if self.device.type == "cuda":
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                outputs = self.model(batch)
        else:
            outputs = self.model(batch)
        decoded = decode_predictions(outputs, self.config)  # (B, N, 5 + C) float32
        selected = select_boxes(
            decoded,
            score_threshold=self.score_threshold,
            iou_threshold=self.iou_threshold,
            max_detections=self.config.max_detections,
            image_size_px=self.config.input_size_px,
        )
        # .tolist() copies to the host, which waits for the GPU to finish the batch.
        return [rows.tolist() for rows in selected]


def available_cpus() -> int:
    """Return the number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count inside the block and restore it after."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_detector(
    device: str | torch.device = "cpu", *, weights_dir: Path | None = None
) -> Detector:
    """Load the shipped detector on ``device``; repeated calls in a process return the same one.

    Raises DetectorWeightsNotFoundError naming the missing file and the command that trains it.
    """
    resolved_device = str(torch.device(device))
    folder = (weights_dir or WEIGHTS_DIR).resolve()
    return _load_detector_cached(resolved_device, folder)


@functools.cache
def _load_detector_cached(device: str, weights_dir: Path) -> Detector:
    path = weights_dir / DETECTOR_FILE
    if not path.is_file():
        raise DetectorWeightsNotFoundError(path)
    version = file_version(path)
    checkpoint = load_detector_checkpoint(path, device=device)
    logger.info(
        "loaded detector %s (%s backbone) on %s", version, checkpoint.config.backbone, device
    )
    return Detector(checkpoint.model, version=version, device=torch.device(device))
