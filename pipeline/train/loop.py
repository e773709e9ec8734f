"""Training of one tile classifier on simulated ink, with validation and real-ink scores."""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pipeline.models.classifier import (
    InkClassifier,
    InkClassifierConfig,
    count_trainable_parameters,
    save_checkpoint,
)
from pipeline.models.preprocess import tiles_to_tensor
from pipeline.progress import ProgressCallback, ProgressEvent
from pipeline.train.determinism import deterministic
from pipeline.train.realink import load_evaluation_groups
from pipeline.train.samples import CLASS_NAMES, TASKS, TileSet, generate_tiles
from pipeline.train.sources import (
    BENCHMARK_HOLDOUT,
    TRAIN_SOURCES,
    VALIDATION_SOURCES,
    SourceImage,
    load_source,
)

logger = logging.getLogger(__name__)

TRAINING_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines a training run; stored in the checkpoint metadata."""

    task: str
    data_dir: Path
    out: Path
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    train_tiles: int = 2400
    validation_tiles: int = 600
    threads: int = 2

    def to_json(self) -> dict[str, Any]:
        """Return the settings as JSON-safe values; paths are given by name only."""
        values = asdict(self)
        values["data_dir"] = self.data_dir.name
        values["out"] = self.out.name
        return values


@dataclass
class TrainResult:
    """Metrics of a finished run and where the checkpoint and report were written."""

    checkpoint: Path
    report: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def train_classifier(
    settings: TrainSettings, *, progress: ProgressCallback | None = None
) -> TrainResult:
    """Train one classifier, score it, and write the checkpoint and a JSON training report.

    The checkpoint contains only values that the seed determines, so two runs with the
    same settings on the same machine write identical files. Wall-clock times go to the
    report ``<out stem>.json`` beside it.
    """
    if settings.task not in TASKS:
        raise ValueError(f"unknown task {settings.task!r}; expected one of {', '.join(TASKS)}")
    report = progress or _no_progress
    started = time.perf_counter()
    timings: dict[str, float] = {}

    with deterministic(settings.seed, settings.threads):
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
        config = InkClassifierConfig(class_names=CLASS_NAMES[settings.task])
        model = InkClassifier(config)
        logger.info(
            "%s classifier: %d trainable parameters",
            settings.task,
            count_trainable_parameters(model),
        )
        history = _fit(model, train_set, validation_set, settings, report)
        timings["train_s"] = time.perf_counter() - mark

        mark = time.perf_counter()
        real_ink = evaluate_real_ink(model, settings.data_dir, settings.task)
        timings["real_ink_s"] = time.perf_counter() - mark

    final = history[-1]
    metrics: dict[str, Any] = {
        "validation_accuracy": final["validation_accuracy"],
        "validation_loss": final["validation_loss"],
        "train_loss": final["train_loss"],
        "real_ink": real_ink,
    }
    metadata = {
        "task": settings.task,
        "seed": settings.seed,
        "version": TRAINING_FORMAT_VERSION,
        "settings": settings.to_json(),
        "parameters": count_trainable_parameters(model),
        "data": {
            "train_sources": list(TRAIN_SOURCES),
            "validation_sources": list(VALIDATION_SOURCES),
            "benchmark_holdout": list(BENCHMARK_HOLDOUT),
            "train_tiles": len(train_set),
            "validation_tiles": len(validation_set),
            "train_class_counts": np.bincount(train_set.labels, minlength=2).tolist(),
        },
        "metrics": metrics,
        "history": history,
        "torch": str(torch.__version__),
    }
    save_checkpoint(settings.out, model, metadata=metadata)

    timings["total_s"] = time.perf_counter() - started
    report_path = settings.out.with_suffix(".json")
    training_report = {
        **metadata,
        "timings_s": {key: round(value, 1) for key, value in timings.items()},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": settings.threads,
        },
    }
    report_path.write_text(json.dumps(training_report, indent=1) + "\n")
    report(ProgressEvent("done", 1, 1, f"wrote {settings.out}"))
    logger.info(
        "trained %s classifier in %.0f s: validation accuracy %.3f, real-ink accuracy %.3f",
        settings.task,
        timings["total_s"],
        metrics["validation_accuracy"],
        real_ink["overall"]["accuracy"],
    )
    return TrainResult(checkpoint=settings.out, report=report_path, metrics=metrics)


def augment_batch(tiles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Randomly flip, rotate by multiples of 90 degrees and colour-jitter (B, 3, S, S) tiles.

    The jitter scales brightness by up to 6%, each channel by up to 4% and saturation by
    up to 10%, which is about the stain and scanner variation between H&E slides.
    """
    batch = tiles.shape[0]
    flip = torch.rand(batch, generator=generator) < 0.5
    tiles = torch.where(flip[:, None, None, None], tiles.flip(3), tiles)
    turns = torch.randint(0, 4, (batch,), generator=generator)
    rotated = tiles.clone()
    for quarter_turns in (1, 2, 3):
        selected = turns == quarter_turns
        if selected.any():
            rotated[selected] = torch.rot90(tiles[selected], quarter_turns, dims=(2, 3))

    brightness = 1.0 + (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.12
    channel_gain = 1.0 + (torch.rand(batch, 3, 1, 1, generator=generator) - 0.5) * 0.08
    saturation = 1.0 + (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.2
    grey = rotated.mean(dim=1, keepdim=True)  # (B, 1, S, S)
    jittered = (grey + (rotated - grey) * saturation) * brightness * channel_gain
    return jittered.clamp_(0.0, 1.0)


def predict_probabilities(
    model: InkClassifier, tiles: NDArray[np.uint8], *, batch_size: int = 128
) -> NDArray[np.float32]:
    """Return the positive-class probability of (N, 128, 128, 3) uint8 tiles, shape (N,)."""
    model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(tiles), batch_size):
            batch = tiles_to_tensor(tiles[start : start + batch_size])  # (B, 3, S, S)
            outputs.append(torch.softmax(model(batch), dim=1)[:, 1].numpy())
    return np.concatenate(outputs) if outputs else np.zeros(0, np.float32)


def evaluate_real_ink(model: InkClassifier, data_dir: Path, task: str) -> dict[str, Any]:
    """Score the model on the real ink images; return accuracy per group and overall."""
    results: dict[str, Any] = {}
    correct_total = 0
    count_total = 0
    for group in load_evaluation_groups(data_dir, task):
        probabilities = predict_probabilities(model, group.tiles)
        predicted = (probabilities >= 0.5).astype(np.int64)
        correct = predicted == group.labels
        results[group.name] = {
            "accuracy": round(float(correct.mean()), 4),
            "count": len(group.labels),
            "class_counts": np.bincount(group.labels, minlength=2).tolist(),
            "recall_by_class": [
                round(float(correct[group.labels == label].mean()), 4)
                if (group.labels == label).any()
                else None
                for label in (0, 1)
            ],
            "errors": [item for item, ok in zip(group.items, correct, strict=True) if not ok][:20],
        }
        if group.name == "labelled-tiles":
            results[group.name]["probabilities"] = {
                item: round(float(p), 4) for item, p in zip(group.items, probabilities, strict=True)
            }
        correct_total += int(correct.sum())
        count_total += len(group.labels)
    results["overall"] = {
        "accuracy": round(correct_total / max(count_total, 1), 4),
        "count": count_total,
    }
    return results


def _fit(
    model: InkClassifier,
    train_set: TileSet,
    validation_set: TileSet,
    settings: TrainSettings,
    report: ProgressCallback,
) -> list[dict[str, float]]:
    """Run the epochs; return per-epoch train loss, validation loss and accuracy."""
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_set) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.learning_rate, total_steps=total_steps, pct_start=0.15
    )
    loss_function = nn.CrossEntropyLoss()
    tiles = tiles_to_tensor(train_set.tiles)  # (N, 3, 128, 128)
    labels = torch.from_numpy(train_set.labels)  # (N,)

    history = []
    step = 0
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            batch = augment_batch(tiles[index], generator)  # (B, 3, 128, 128)
            loss = loss_function(model(batch), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += float(loss.detach()) * len(index)
            step += 1
            report(
                ProgressEvent("train", step, total_steps, f"epoch {epoch + 1}/{settings.epochs}")
            )

        validation_loss, validation_accuracy = _validate(model, validation_set, loss_function)
        record = {
            "epoch": epoch + 1,
            "train_loss": round(epoch_loss / len(labels), 4),
            "validation_loss": round(validation_loss, 4),
            "validation_accuracy": round(validation_accuracy, 4),
        }
        history.append(record)
        logger.info(
            "epoch %d/%d: train loss %.4f, validation loss %.4f, validation accuracy %.4f",
            epoch + 1,
            settings.epochs,
            record["train_loss"],
            validation_loss,
            validation_accuracy,
        )
    return history


def _validate(
    model: InkClassifier, validation_set: TileSet, loss_function: nn.Module
) -> tuple[float, float]:
    model.eval()
    total_loss = 0.0
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(validation_set), 128):
            batch = tiles_to_tensor(validation_set.tiles[start : start + 128])  # (B, 3, S, S)
            labels = torch.from_numpy(validation_set.labels[start : start + 128])
            logits = model(batch)  # (B, 2)
            total_loss += float(loss_function(logits, labels)) * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
    return total_loss / len(validation_set), correct / len(validation_set)


def _generate(
    settings: TrainSettings,
    sources: list[SourceImage],
    split: str,
    count: int,
    report: ProgressCallback,
) -> TileSet:
    # Distinct seed streams per task and split, all derived from the one run seed.
    stream = [settings.seed, TASKS.index(settings.task), 0 if split == "train" else 1]
    stage = f"generate {split}"

    def tick(done: int, total: int) -> None:
        report(ProgressEvent(stage, done, total, f"{split} tiles"))

    tile_set = generate_tiles(settings.task, sources, count=count, seed=stream, progress=tick)
    logger.info("generated %d %s tiles for the %s task", count, split, settings.task)
    return tile_set


def _no_progress(event: ProgressEvent) -> None:
    del event
