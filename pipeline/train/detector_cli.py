"""The ``inkremove train detector`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.models.detector import BACKBONES
from pipeline.train.cli import add_epoch_arguments
from pipeline.train.detector import DetectorTrainSettings, train_detector

logger = logging.getLogger(__name__)

DEFAULTS = DetectorTrainSettings(data_dir=Path("../shared/data"), out=Path("detector.pt"))


def add_detector_parser(
    models: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``detector`` on the subparsers of ``inkremove train``."""
    parser = models.add_parser(
        "detector",
        help="train the ink and cluster box detector",
        description=(
            "Train the YOLOv3-style ink and cluster detector on 256 px crops of clean tissue "
            "and glass from the data folder with simulated ink, score mAP@0.5 on held-out "
            "source images and ink recall on the real pen-ink images, and write the "
            "checkpoint and a JSON training report beside it."
        ),
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULTS.data_dir,
        help="real data folder (default ../shared/data)",
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help=f"random seed (default {DEFAULTS.seed})"
    )
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        default=DEFAULTS.backbone,
        help=(
            "compact: small enough to train on a CPU; darknet53: the 61M-parameter "
            f"YOLOv3 network, for a GPU (default {DEFAULTS.backbone})"
        ),
    )
    add_epoch_arguments(parser, DEFAULTS, optimiser="AdamW", tiles="simulated 256 px")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=DEFAULTS.device,
        help=f"device that trains the model (default {DEFAULTS.device})",
    )
    parser.set_defaults(func=run_train_detector)
    return parser


def run_train_detector(args: argparse.Namespace) -> int:
    """Run ``inkremove train detector``; return the process exit code."""
    from pipeline.train.cli import arguments_valid, progress_display

    if not arguments_valid(args, ("epochs", "batch_size", "train_tiles", "validation_tiles",
                                  "threads")):
        return 2

    settings = DetectorTrainSettings(
        data_dir=args.data,
        out=args.out,
        seed=args.seed,
        backbone=args.backbone,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        train_tiles=args.train_tiles,
        validation_tiles=args.validation_tiles,
        threads=args.threads,
        device=args.device,
    )
    progress = progress_display()
    try:
        result = train_detector(settings, progress=progress)
    except (FileNotFoundError, ValueError) as error:
        logger.error("training failed: %s", error)
        return 2
    finally:
        progress.close()
    validation = result.metrics["validation"]
    real = result.metrics["real_ink"]["overall"]
    # The result is the command's output, so it goes to stdout whatever the log level.
    sys.stdout.write(
        f"{args.backbone} detector: validation mAP@0.5 {validation['map']}, "
        f"real-ink AP@0.5 {real['ap']} and recall {real['recall']} "
        f"on {real['ground_truth']} ink boxes; wrote {result.checkpoint} and {result.report}\n"
    )
    return 0
