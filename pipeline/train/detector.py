"""Detector training on simulated ink, with validation mAP and real-ink scores."""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from pipeline.models.detector import (
    BACKBONES,
    DEFAULT_ANCHORS_PX,
    Backbone,
    DetectorConfig,
    DetectorNet,
    count_parameters,
    decode_predictions,
    save_detector_checkpoint,
    select_boxes,
)
from pipeline.models.preprocess import tiles_to_tensor
from pipeline.progress import ProgressCallback, ProgressEvent
from pipeline.train.detector_data import (
    CLASS_NAMES,
    INK_CLASS,
    TILE_PX,
    DetectionSet,
    generate_detection_tiles,
)
from pipeline.train.detector_eval import (
    RealInkGroup,
    detection_scores,
    load_real_ink_groups,
    pixel_recall,
)
from pipeline.train.detector_loss import yolo_loss
from pipeline.train.loop import TrainResult
from pipeline.train.sources import (
    BENCHMARK_HOLDOUT,
    TRAIN_SOURCES,
    VALIDATION_SOURCES,
    SourceImage,
    load_source,
)

logger = logging.getLogger(__name__)

TRAINING_FORMAT_VERSION = "1"
# Seed stream of the detector's tiles; the classifier tasks use streams 0 and 1.
SEED_STREAM = 2
# Detections down to this score are kept when computing AP, so that the
# precision-recall curve reaches low-confidence boxes.
AP_SCORE_THRESHOLD = 0.01
MAX_GRADIENT_NORM = 10.0
EVALUATION_BATCH = 32


@dataclass(frozen=True)
class DetectorTrainSettings:
    """Everything that determines a detector training run; stored in the checkpoint."""

    data_dir: Path
    out: Path
    seed: int = 0
    backbone: Backbone = "compact"
    epochs: int = 6
    batch_size: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    train_tiles: int = 1600
    validation_tiles: int = 300
    threads: int = 2
    device: str = "cpu"
    ignore_iou: float = 0.5

    def to_json(self) -> dict[str, Any]:
        """Return the settings as JSON-safe values; paths are given by name only."""
        values = asdict(self)
        values["data_dir"] = self.data_dir.name
        values["out"] = self.out.name
        return values


def train_detector(
    settings: DetectorTrainSettings, *, progress: ProgressCallback | None = None
) -> TrainResult:
    """Train the detector, score it, and write the checkpoint and a JSON training report.

    On a CPU the checkpoint contains only values that the seed determines, so two runs
    with the same settings, thread count and machine write identical files. Wall-clock
    times go to the report ``<out stem>.json`` beside it.
    """
    if settings.backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {settings.backbone!r}; expected one of {', '.join(BACKBONES)}"
        )
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was given but torch finds no CUDA device; use cpu")
    report = progress or _no_progress
    started = time.perf_counter()
    timings: dict[str, float] = {}

    with _deterministic(settings.seed, settings.threads, device):
        report(ProgressEvent("load", 0, 2, "loading clean source images"))
        train_sources = [load_source(settings.data_dir, name) for name in TRAIN_SOURCES]
        validation_sources = [load_source(settings.data_dir, name) for name in VALIDATION_SOURCES]
        timings["load_s"] = time.perf_counter() - started

        mark = time.perf_counter()
        train_set = _generate(settings, train_sources, "train", settings.train_tiles, report)
        validation_set = _generate(
            settings, validation_sources, "validation", settings.validation_tiles, report
        )
        timings["generate_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        anchors = kmeans_anchors(_box_sizes(train_set), seed=settings.seed)
        config = DetectorConfig(
            backbone=settings.backbone,
            input_size_px=TILE_PX,
            class_names=CLASS_NAMES,
            anchors_px=anchors,
        )
        model = DetectorNet(config).to(device)
        logger.info(
            "%s detector: %d trainable parameters", settings.backbone, count_parameters(model)
        )
        history = _fit(model, train_set, validation_set, settings, device, report)
        timings["train_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        report(ProgressEvent("evaluate", 0, 2, "validation tiles"))
        validation_boxes, _ = predict(model, validation_set.tiles, device=device)
        validation = detection_scores(
            validation_boxes,
            validation_set.boxes,
            CLASS_NAMES,
            operating_threshold=config.score_threshold,
        )
        report(ProgressEvent("evaluate", 1, 2, "real ink tiles"))
        real_ink = evaluate_real_ink(model, load_real_ink_groups(settings.data_dir), device=device)
        timings["evaluate_s"] = time.perf_counter() - mark

    model.cpu()
    metrics: dict[str, Any] = {
        "validation": validation,
        "real_ink": real_ink,
        "final_epoch": history[-1],
    }
    metadata = {
        "task": "detector",
        "seed": settings.seed,
        "version": TRAINING_FORMAT_VERSION,
        "settings": settings.to_json(),
        "parameters": count_parameters(model),
        "data": {
            "train_sources": list(TRAIN_SOURCES),
            "validation_sources": list(VALIDATION_SOURCES),
            "benchmark_holdout": list(BENCHMARK_HOLDOUT),
            "train_tiles": len(train_set),
            "validation_tiles": len(validation_set),
            "train_box_counts": dict(zip(CLASS_NAMES, train_set.class_counts(), strict=True)),
            "validation_box_counts": dict(
                zip(CLASS_NAMES, validation_set.class_counts(), strict=True)
            ),
        },
        "metrics": metrics,
        "history": history,
        "torch": str(torch.__version__),
    }
    save_detector_checkpoint(settings.out, model, metadata=metadata)

    timings["total_s"] = time.perf_counter() - started
    report_path = settings.out.with_suffix(".json")
    training_report = {
        **metadata,
        "timings_s": {key: round(value, 1) for key, value in timings.items()},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": settings.threads,
            "device": str(device),
        },
    }
    report_path.write_text(json.dumps(training_report, indent=1) + "\n")
    report(ProgressEvent("done", 1, 1, f"wrote {settings.out}"))
    logger.info(
        "trained %s detector in %.0f s: validation mAP@0.5 %s, real-ink AP@0.5 %s",
        settings.backbone,
        timings["total_s"],
        validation["map"],
        real_ink["overall"]["ap"],
    )
    return TrainResult(checkpoint=settings.out, report=report_path, metrics=metrics)


def kmeans_anchors(
    sizes: NDArray[np.float32], *, seed: int, iterations: int = 100, restarts: int = 5
) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Cluster (N, 2) box sizes into 9 anchors, 3 per stride, with 1 - IoU as distance.

    This is the anchor choice of YOLOv2 and YOLOv3 (k-means on the training boxes).
    Each of ``restarts`` runs starts from k-means++ seeding drawn with ``seed`` and
    moves centres to the median size of their boxes. The run with the highest mean
    IoU between boxes and their nearest anchor wins. Anchors are sorted by area so
    that the smallest go to stride 8. Fewer than 9 distinct sizes give the defaults.
    """
    count = len(DEFAULT_ANCHORS_PX) * len(DEFAULT_ANCHORS_PX[0])
    distinct = np.unique(sizes, axis=0)
    if len(distinct) < count:
        logger.warning("only %d distinct box sizes; using the default anchors", len(distinct))
        return DEFAULT_ANCHORS_PX
    rng = np.random.default_rng(seed)
    best_centres = distinct[:count].astype(np.float64)
    best_fitness = -1.0
    for _ in range(restarts):
        centres = _kmeans_plus_plus(distinct, count, rng)
        for _ in range(iterations):
            assignment = _size_iou(sizes, centres).argmax(axis=1)
            updated = np.array(
                [
                    np.median(sizes[assignment == cluster], axis=0)
                    if (assignment == cluster).any()
                    else centres[cluster]
                    for cluster in range(count)
                ]
            )
            if np.allclose(updated, centres):
                break
            centres = updated
        fitness = float(_size_iou(sizes, centres).max(axis=1).mean())
        if fitness > best_fitness:
            best_centres, best_fitness = centres, fitness

    ordered = best_centres[np.argsort(best_centres.prod(axis=1), kind="stable")]
    per_scale = len(DEFAULT_ANCHORS_PX[0])
    return tuple(
        tuple(
            (round(float(w), 1), round(float(h), 1)) for w, h in ordered[start : start + per_scale]
        )
        for start in range(0, count, per_scale)
    )


def _kmeans_plus_plus(
    sizes: NDArray[np.float32], count: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Draw ``count`` starting centres, each with probability growing with (1 - IoU)^2."""
    centres = [sizes[int(rng.integers(len(sizes)))]]
    for _ in range(count - 1):
        distance = 1.0 - _size_iou(sizes, np.array(centres, np.float64)).max(axis=1)
        weights = distance**2
        total = float(weights.sum())
        if total <= 0:
            centres.append(sizes[int(rng.integers(len(sizes)))])
            continue
        centres.append(sizes[int(rng.choice(len(sizes), p=weights / total))])
    return np.array(centres, np.float64)


def _size_iou(sizes: NDArray[np.float32], centres: NDArray[np.float64]) -> NDArray[np.float64]:
    overlap = np.minimum(sizes[:, None, :], centres[None, :, :]).prod(axis=2)
    union = sizes.prod(axis=1)[:, None] + centres.prod(axis=1)[None, :] - overlap
    return overlap / union


def _box_sizes(tile_set: DetectionSet) -> NDArray[np.float32]:
    boxes = [labelled[:, :4] for labelled in tile_set.boxes if len(labelled)]
    if not boxes:
        return np.zeros((0, 2), np.float32)
    corners = np.concatenate(boxes)
    return np.maximum(corners[:, 2:] - corners[:, :2], 1.0).astype(np.float32)


def augment_detection_batch(
    tiles: torch.Tensor, boxes: list[torch.Tensor], generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Randomly flip, transpose and colour-jitter (B, 3, S, S) tiles and move their boxes.

    Horizontal flip, vertical flip and transpose together give all 8 rotations and
    reflections of the square. The colour jitter is that of the tile classifier:
    brightness up to 6%, each channel up to 4% and saturation up to 10%.
    """
    batch, _, size, _ = tiles.shape
    choices = torch.rand(batch, 3, generator=generator) < 0.5
    out_tiles = tiles.clone()
    out_boxes = []
    for index in range(batch):
        tile = tiles[index]
        labelled = boxes[index].clone()
        flip_x, flip_y, transpose = (bool(value) for value in choices[index])
        if flip_x:
            tile = tile.flip(2)
            labelled[:, [0, 2]] = size - labelled[:, [2, 0]]
        if flip_y:
            tile = tile.flip(1)
            labelled[:, [1, 3]] = size - labelled[:, [3, 1]]
        if transpose:
            tile = tile.transpose(1, 2)
            labelled[:, [0, 1, 2, 3]] = labelled[:, [1, 0, 3, 2]]
        out_tiles[index] = tile
        out_boxes.append(labelled)

    brightness = 1.0 + (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.12
    channel_gain = 1.0 + (torch.rand(batch, 3, 1, 1, generator=generator) - 0.5) * 0.08
    saturation = 1.0 + (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.2
    grey = out_tiles.mean(dim=1, keepdim=True)  # (B, 1, S, S)
    jittered = (grey + (out_tiles - grey) * saturation) * brightness * channel_gain
    return jittered.clamp_(0.0, 1.0), out_boxes


def predict(
    model: DetectorNet,
    tiles: NDArray[np.uint8],
    *,
    device: torch.device,
    targets: Sequence[NDArray[np.float32]] | None = None,
    score_threshold: float = AP_SCORE_THRESHOLD,
    ignore_iou: float = 0.5,
) -> tuple[list[NDArray[np.float32]], float | None]:
    """Return per tile (K, 6) detections of (N, S, S, 3) uint8 tiles at model input size.

    With ``targets`` also returns the mean loss per tile against them, else None.
    """
    model.eval()
    detections: list[NDArray[np.float32]] = []
    total_loss = 0.0
    with torch.inference_mode():
        for start in range(0, len(tiles), EVALUATION_BATCH):
            batch = tiles_to_tensor(tiles[start : start + EVALUATION_BATCH]).to(device)
            outputs = model(batch)
            if targets is not None:
                labelled = [
                    torch.from_numpy(boxes) for boxes in targets[start : start + EVALUATION_BATCH]
                ]
                loss = yolo_loss(outputs, labelled, model.config, ignore_iou=ignore_iou)
                total_loss += float(loss.total) * len(labelled)
            selected = select_boxes(
                decode_predictions(outputs, model.config),
                score_threshold=score_threshold,
                iou_threshold=model.config.nms_iou_threshold,
                max_detections=model.config.max_detections,
                image_size_px=model.config.input_size_px,
            )
            detections.extend(rows.cpu().numpy().astype(np.float32) for rows in selected)
    mean_loss = total_loss / len(tiles) if targets is not None and len(tiles) else None
    return detections, mean_loss


def evaluate_real_ink(
    model: DetectorNet, groups: list[RealInkGroup], *, device: torch.device
) -> dict[str, Any]:
    """Score the ink class on real pen-ink tiles; return AP, recall and pixel recall per group.

    Recall, precision and pixel recall count detections at the model's default score
    threshold. ``false_ink_boxes_on_clean`` counts ink boxes on tiles without ink.
    """
    threshold = model.config.score_threshold
    results: dict[str, Any] = {}
    all_detections: list[NDArray[np.float32]] = []
    all_truth: list[NDArray[np.float32]] = []
    all_masks: list[NDArray[np.bool_]] = []
    for group in groups:
        detections, _ = predict(model, group.tiles, device=device)
        scores = detection_scores(
            detections, group.boxes, CLASS_NAMES[:1], operating_threshold=threshold
        )
        ink = scores["per_class"]["ink"]
        clean_tiles = [index for index, mask in enumerate(group.masks) if not mask.any()]
        results[group.name] = {
            "tiles": len(group.tiles),
            "ap": ink["ap"],
            "recall": ink["recall"],
            "precision": ink["precision"],
            "ground_truth": ink["ground_truth"],
            "pixel_recall": _rounded(
                pixel_recall(detections, group.masks, label=INK_CLASS, score_threshold=threshold)
            ),
            "clean_tiles": len(clean_tiles),
            "false_ink_boxes_on_clean": sum(
                int(((detections[i][:, 5] == INK_CLASS) & (detections[i][:, 4] >= threshold)).sum())
                for i in clean_tiles
            ),
        }
        all_detections += detections
        all_truth += group.boxes
        all_masks += group.masks

    overall = detection_scores(
        all_detections, all_truth, CLASS_NAMES[:1], operating_threshold=threshold
    )["per_class"]["ink"]
    results["overall"] = {
        "tiles": len(all_masks),
        "ap": overall["ap"],
        "recall": overall["recall"],
        "precision": overall["precision"],
        "ground_truth": overall["ground_truth"],
        "pixel_recall": _rounded(
            pixel_recall(all_detections, all_masks, label=INK_CLASS, score_threshold=threshold)
        ),
        "score_threshold": threshold,
        "iou_threshold": 0.5,
    }
    return results


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fit(
    model: DetectorNet,
    train_set: DetectionSet,
    validation_set: DetectionSet,
    settings: DetectorTrainSettings,
    device: torch.device,
    report: ProgressCallback,
) -> list[dict[str, Any]]:
    """Run the epochs; return per-epoch train loss, validation loss and validation mAP."""
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_set) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.learning_rate, total_steps=total_steps, pct_start=0.15
    )
    targets = [torch.from_numpy(boxes) for boxes in train_set.boxes]

    history = []
    step = 0
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            tiles = tiles_to_tensor(train_set.tiles[index.numpy()])  # (B, 3, S, S)
            tiles, boxes = augment_detection_batch(
                tiles, [targets[i] for i in index.tolist()], generator
            )
            outputs = model(tiles.to(device, non_blocking=True))
            loss = yolo_loss(outputs, boxes, model.config, ignore_iou=settings.ignore_iou)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            # Early steps on empty anchors can give large gradients; clipping keeps
            # the first updates from wrecking the batch-norm statistics.
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRADIENT_NORM)
            optimizer.step()
            scheduler.step()
            # float() waits for the device to finish the step.
            epoch_loss += float(loss.total.detach()) * len(index)
            step += 1
            report(
                ProgressEvent("train", step, total_steps, f"epoch {epoch + 1}/{settings.epochs}")
            )

        detections, validation_loss = predict(
            model,
            validation_set.tiles,
            device=device,
            targets=validation_set.boxes,
            ignore_iou=settings.ignore_iou,
        )
        scores = detection_scores(detections, validation_set.boxes, CLASS_NAMES)
        per_class = scores["per_class"]
        record = {
            "epoch": epoch + 1,
            "train_loss": round(epoch_loss / len(train_set), 4),
            "validation_loss": round(validation_loss or 0.0, 4),
            "validation_map": scores["map"],
            "validation_ap": {name: per_class[name]["ap"] for name in CLASS_NAMES},
        }
        history.append(record)
        logger.info(
            "epoch %d/%d: train loss %.3f, validation loss %.3f, validation mAP@0.5 %s",
            epoch + 1,
            settings.epochs,
            record["train_loss"],
            record["validation_loss"],
            scores["map"],
        )
    return history


def _generate(
    settings: DetectorTrainSettings,
    sources: list[SourceImage],
    split: str,
    count: int,
    report: ProgressCallback,
) -> DetectionSet:
    # Distinct seed streams per split, all derived from the one run seed.
    stream = [settings.seed, SEED_STREAM, 0 if split == "train" else 1]
    stage = f"generate {split}"

    def tick(done: int, total: int) -> None:
        report(ProgressEvent(stage, done, total, f"{split} tiles"))

    tile_set = generate_detection_tiles(sources, count=count, seed=stream, progress=tick)
    logger.info(
        "generated %d %s tiles with %s ink and %s cluster boxes",
        count,
        split,
        *tile_set.class_counts(),
    )
    return tile_set


@contextmanager
def _deterministic(seed: int, threads: int, device: torch.device) -> Iterator[None]:
    """Seed torch, fix the thread count and require deterministic kernels, then restore.

    On CUDA, kernels without a deterministic version (the backward pass of nearest
    upsampling among them) only warn, so CUDA runs are not bitwise reproducible.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
        torch.set_num_threads(previous_threads)


def _no_progress(event: ProgressEvent) -> None:
    del event
