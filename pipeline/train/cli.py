"""The ``inkremove train`` command: ``classifier`` here, other models from their own modules."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Protocol

from pipeline.progress import ProgressEvent
from pipeline.train.loop import TrainSettings, train_classifier
from pipeline.train.samples import TASKS

logger = logging.getLogger(__name__)

DEFAULTS = TrainSettings(task="ink", data_dir=Path("../shared/data"), out=Path("model.pt"))


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``train`` and its model subcommands on the ``inkremove`` parsers."""
    train = subparsers.add_parser("train", help="train the pipeline's models")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    parser = models.add_parser(
        "classifier",
        help="train the ink or the background/foreground tile classifier",
        description=(
            "Train a 128 px tile classifier on clean tissue and glass from the data folder "
            "with simulated ink, validate it on held-out source images, score it on the real "
            "pen-ink images, and write the checkpoint and a JSON training report beside it."
        ),
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        required=True,
        help="ink: ink vs no ink; background: ink on glass only vs ink over tissue",
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
    add_epoch_arguments(parser, DEFAULTS, optimiser="Adam", tiles="simulated")
    parser.set_defaults(func=run_train_classifier)
    from pipeline.train.restoration_cli import add_parsers

    add_parsers(models)
    from pipeline.train.detector_cli import add_detector_parser

    add_detector_parser(models)
    return parser


class EpochDefaults(Protocol):
    """The defaults that ``add_epoch_arguments`` shows: fields of a settings dataclass."""

    @property
    def epochs(self) -> int: ...  # noqa: D102
    @property
    def batch_size(self) -> int: ...  # noqa: D102
    @property
    def learning_rate(self) -> float: ...  # noqa: D102
    @property
    def train_tiles(self) -> int: ...  # noqa: D102
    @property
    def validation_tiles(self) -> int: ...  # noqa: D102
    @property
    def threads(self) -> int: ...  # noqa: D102


def add_epoch_arguments(parser: argparse.ArgumentParser, defaults: EpochDefaults, *,
                        optimiser: str, tiles: str) -> None:
    """Add the options of an epoch-based tile trainer: epochs, batch, rate, tiles, threads.

    ``optimiser`` names the optimiser and ``tiles`` describes the generated tiles in the
    help text.
    """
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"training epochs (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"tiles per step (default {defaults.batch_size})")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate,
                        help=f"peak {optimiser} learning rate of a one-cycle schedule "
                             f"(default {defaults.learning_rate})")
    parser.add_argument("--train-tiles", type=int, default=defaults.train_tiles,
                        help=f"{tiles} training tiles (default {defaults.train_tiles})")
    parser.add_argument("--validation-tiles", type=int, default=defaults.validation_tiles,
                        help=f"{tiles} validation tiles (default {defaults.validation_tiles})")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="CPU threads for torch; CPU runs are reproducible for a fixed "
                             f"count (default {defaults.threads})")


def arguments_valid(args: argparse.Namespace, counts: tuple[str, ...]) -> bool:
    """Log an error and return False when a count is below 1 or ``--data`` has no clean/."""
    for name in counts:
        if getattr(args, name) < 1:
            logger.error(
                "--%s must be at least 1, got %d", name.replace("_", "-"), getattr(args, name)
            )
            return False
    if not (args.data / "clean").is_dir():
        logger.error(
            "data folder %s has no clean/ images; pass --data pointing at the real data folder",
            args.data,
        )
        return False
    return True


def run_train_classifier(args: argparse.Namespace) -> int:
    """Run ``inkremove train classifier``; return the process exit code."""
    if not arguments_valid(args, ("epochs", "batch_size", "train_tiles", "validation_tiles",
                                  "threads")):
        return 2

    settings = TrainSettings(
        task=args.task,
        data_dir=args.data,
        out=args.out,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        train_tiles=args.train_tiles,
        validation_tiles=args.validation_tiles,
        threads=args.threads,
    )
    progress = progress_display()
    try:
        result = train_classifier(settings, progress=progress)
    except (FileNotFoundError, ValueError) as error:
        logger.error("training failed: %s", error)
        return 2
    finally:
        progress.close()
    real = result.metrics["real_ink"]["overall"]
    # The result is the command's output, so it goes to stdout whatever the log level.
    sys.stdout.write(
        f"{args.task} classifier: validation accuracy {result.metrics['validation_accuracy']:.3f}, "
        f"real-ink accuracy {real['accuracy']:.3f} on {real['count']} tiles; "
        f"wrote {result.checkpoint} and {result.report}\n"
    )
    return 0


def progress_display() -> _TerminalProgress | _LogProgress:
    """Return a progress bar on an interactive terminal, else a progress logger."""
    return _TerminalProgress() if sys.stderr.isatty() else _LogProgress()


class _TerminalProgress:
    """A tqdm bar per stage, for an interactive terminal."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: tqdm | None = None
        self._stage = ""

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage != self._stage or self._bar is None:
            self.close()
            self._stage = event.stage
            self._bar = self._tqdm(total=event.total, desc=event.stage, unit="step", leave=False)
        self._bar.set_postfix_str(event.message, refresh=False)
        self._bar.update(event.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _LogProgress:
    """Log lines at every 10% of a stage (INFO level), for CI logs and redirected output."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def __call__(self, event: ProgressEvent) -> None:
        tenth = (10 * event.done) // max(event.total, 1)
        if self._last.get(event.stage) == tenth:
            return
        self._last[event.stage] = tenth
        logger.info("%s: %d/%d %s", event.stage, event.done, event.total, event.message)

    def close(self) -> None:
        self._last.clear()
