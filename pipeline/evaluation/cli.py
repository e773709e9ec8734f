"""The ``inkremove evaluate`` subcommand: run the benchmark and write its tables."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.evaluation.benchmark import run_benchmark, to_markdown
from pipeline.evaluation.methods import METHODS

logger = logging.getLogger(__name__)

DEFAULT_METHODS = ("unchanged", "white-fill", "telea", "od", "cyclegan", "cyclegan-dense-sparse",
                   "paired")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``evaluate`` on the ``inkremove`` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score restoration methods on real and simulated ink",
        description="Run restoration methods on the real blue-ink test pairs and on "
                    "simulated ink over held-out tissue, with detected and ground-truth "
                    "masks, and score ink detection on hand-masked thumbnails.",
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder with paired-blue-ink/, clean/ and ink/ (default: %(default)s)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated methods from {sorted(METHODS)} "
                             "(default: %(default)s)")
    parser.add_argument("--count", type=int, default=200,
                        help="simulated tiles (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")
    parser.add_argument("--markdown", type=Path, default=Path("docs/quality.md"),
                        help="Markdown table to write (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=Path("docs/quality.json"),
                        help="JSON result to write (default: %(default)s)")
    parser.add_argument("--no-detection", action="store_true",
                        help="skip the thumbnail detection scores")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments and return the exit code."""
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.stderr.write(f"inkremove evaluate: unknown method(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(sorted(METHODS))}\n")
        return 2
    if args.count < 1:
        sys.stderr.write(f"inkremove evaluate: --count must be at least 1, got {args.count}\n")
        return 2

    progress_bar = _progress_bar()
    result = run_benchmark(args.data, methods=methods, simulated_count=args.count,
                           seed=args.seed, include_detection=not args.no_detection,
                           progress=progress_bar)
    # The arguments after "evaluate"; global options such as --log-level come before it.
    after = sys.argv[sys.argv.index("evaluate") + 1:] if "evaluate" in sys.argv else []
    command = " ".join(["inkremove evaluate", *(shlex.quote(part) for part in after)])
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(to_markdown(result, command=command.strip()) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    logger.info("wrote %s and %s in %.1f s", args.markdown, args.json, result["elapsed_s"])
    return 0


def _progress_bar() -> Callable[[str, int, int], None]:
    """Return a progress callback: a tqdm bar per dataset on a terminal, logs otherwise."""
    from tqdm import tqdm

    bars: dict[str, tqdm[None]] = {}

    def report(dataset: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            if done == total or done % 25 == 0:
                logger.info("%s: %d/%d tiles scored", dataset, done, total)
            return
        bar = bars.get(dataset)
        if bar is None:
            bar = bars[dataset] = tqdm(total=total, desc=dataset, unit="tile")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report
