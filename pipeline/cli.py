"""The ``inkremove`` command line: ``run`` and ``info`` here, more subcommands by registration.

Each subcommand module provides ``add_parser(subparsers)`` that adds its parser and
sets ``func`` (taking the parsed arguments, returning an exit status). Modules in
OPTIONAL_SUBCOMMANDS are registered when they can be imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import InkRemovalError, RunCancelled, SlideReadError
from pipeline.options import RESTORE_METHODS, RunOptions
from pipeline.version import __version__

logger = logging.getLogger(__name__)

OPTIONAL_SUBCOMMANDS = ("pipeline.train.cli", "pipeline.simulate.cli", "pipeline.evaluation.cli")

EXIT_FAILED = 1
EXIT_UNREADABLE = 2
EXIT_INTERRUPTED = 130

Subparsers = Any  # argparse._SubParsersAction is private; its type is not exported


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default sys.argv[1:]), run the subcommand and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except SlideReadError as exc:
        sys.stderr.write(f"inkremove: error: {exc}\n")
        return EXIT_UNREADABLE
    except RunCancelled:
        sys.stderr.write("inkremove: cancelled\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("inkremove: interrupted\n")
        return EXIT_INTERRUPTED
    except InkRemovalError as exc:
        sys.stderr.write(f"inkremove: error: {exc}\n")
        return EXIT_FAILED
    except OSError as exc:
        # An unwritable output folder or a full disk is reported with its path only,
        # because a traceback tells a user nothing more.
        target = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"inkremove: error:{target}: {exc.strerror or exc}\n")
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="inkremove",
                                     description="Remove marker ink from whole-slide images.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="minimum level of log messages written to stderr (default: warning)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(subparsers)
    add_info_parser(subparsers)
    for module_name in OPTIONAL_SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            logger.debug("subcommand module %s not available: %s", module_name, exc)
            continue
        module.add_parser(subparsers)
    return parser


def add_run_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``run SLIDE -o OUTDIR``."""
    parser = subparsers.add_parser(
        "run", help="remove ink from a slide",
        description="Write restored.tiff, ink-mask.tiff and report.json into OUTDIR.")
    parser.add_argument("slide", type=Path, help="slide file to read (never modified)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR",
                        help="folder for the outputs (created if missing)")
    parser.add_argument("--device", default="cpu",
                        help="torch device for the classifiers: cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--restore", choices=RESTORE_METHODS, default=None, metavar="METHOD",
                        help="how ink over tissue is removed: "
                             f"{', '.join(RESTORE_METHODS)} "
                             f"(default: {RunOptions.restore_method})")
    parser.add_argument("--tile-size", type=int, default=None, metavar="PX",
                        help="output tile size in pixels, a multiple of 16 (default: 512, or "
                             "the source's tile size when its JPEG tiles are copied)")
    parser.add_argument("--no-copy-tiles", action="store_true",
                        help="re-encode every tile instead of copying unchanged JPEG tiles")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not show a progress bar even on a terminal")
    parser.set_defaults(func=run_command)
    return parser


def add_info_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``info SLIDE [--json]``."""
    parser = subparsers.add_parser("info", help="print a slide's format, size and resolution")
    parser.add_argument("slide", type=Path, help="slide file to describe")
    parser.add_argument("--json", action="store_true", help="print the metadata as JSON")
    parser.set_defaults(func=info_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run the pipeline on one slide and print a one-line summary."""
    from pipeline.options import RunOptions
    from pipeline.run import run_pipeline

    overrides: dict[str, Any] = {}
    if args.restore is not None:
        overrides["restore_method"] = args.restore
    if args.tile_size is not None:
        overrides["tile_size"] = args.tile_size
    if args.no_copy_tiles:
        overrides["copy_unchanged_tiles"] = False
    try:
        options = RunOptions(**overrides)
    except ValueError as exc:
        sys.stderr.write(f"inkremove: error: {exc}\n")
        return EXIT_FAILED

    show_bar = sys.stderr.isatty() and not args.no_progress
    with _ProgressBar(enabled=show_bar) as bar:
        report = run_pipeline(args.slide, args.output, device=args.device, options=options,
                              progress=bar.update)
    tiles = report["tiles"]
    sys.stdout.write(
        f"{args.slide.name}: ink {'found' if report['ink_found'] else 'not found'}, "
        f"{len(report['regions'])} regions, {tiles['changed']} of {tiles['total']} tiles "
        f"changed ({tiles['unchanged_mode']} elsewhere), restored by "
        f"{report['restore_method']}, {report['timings_s']['total']:.1f} s; "
        f"outputs in {args.output}\n")
    return 0


def info_command(args: argparse.Namespace) -> int:
    """Print a slide's metadata as text or JSON."""
    from pipeline.io import open_slide

    with open_slide(args.slide) as slide:
        info = slide.info
    if args.json:
        sys.stdout.write(json.dumps(info.to_dict(), indent=2) + "\n")
        return 0
    resolution = (f"{info.mpp_x:.4f} x {info.mpp_y:.4f} um/px" if info.mpp_x and info.mpp_y
                  else "unknown")
    lines = [
        f"file:          {info.path}",
        f"format:        {info.format} (read with {info.reader})",
        f"dimensions:    {info.width} x {info.height} px",
        f"levels:        {info.level_count} (downsamples "
        f"{', '.join(f'{value:g}' for value in info.level_downsamples)})",
        f"tile size:     {info.tile_width} x {info.tile_height} px",
        f"resolution:    {resolution}",
        f"magnification: {f'{info.magnification:g}x' if info.magnification else 'unknown'}",
        f"compression:   {info.compression}, {info.bands} band(s)",
        f"associated:    {', '.join(info.associated_images) or 'none'}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


class _ProgressBar:
    """A tqdm bar over the run's overall fraction, or nothing when disabled."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> _ProgressBar:
        if self._enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=1000, unit="‰", file=sys.stderr,
                             bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
        return self

    def update(self, event: Any) -> None:
        """Move the bar to ``event.fraction`` and show the stage."""
        if self._bar is None:
            return
        self._bar.n = int(event.fraction * 1000)
        self._bar.set_description(event.stage, refresh=False)
        self._bar.set_postfix_str(event.message, refresh=False)
        self._bar.refresh()

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
