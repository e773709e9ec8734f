"""The ``inkremove simulate`` command: simulated ink on images, or a whole demo slide."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from pipeline.simulate.colours import COLOUR_NAMES
from pipeline.simulate.render import DEFAULT_MASK_THRESHOLD, simulate_ink
from pipeline.simulate.strokes import STROKE_KINDS

logger = logging.getLogger(__name__)

RANDOM = "random"


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``simulate`` on the ``inkremove`` subcommand parsers."""
    parser = subparsers.add_parser(
        "simulate",
        help="draw simulated marker ink on an image, or write an inked demonstration slide",
        description=(
            "Draw Beer-Lambert simulated pen ink on a clean RGB image and write, for each "
            "sample, the inked PNG, the binary and soft ink masks, the ink density (.npy) "
            "and the drawn parameters (.json). With --demo-slide, write a pyramidal BigTIFF "
            "of a whole slide with four simulated marks instead."
        ),
    )
    parser.add_argument("input", nargs="?", type=Path, help="clean image (PNG, JPEG or TIFF)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output folder; with --demo-slide, the output .tiff file",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--colour",
        choices=[*COLOUR_NAMES, RANDOM],
        default=RANDOM,
        help="ink colour (default: random per sample)",
    )
    parser.add_argument(
        "--kind",
        choices=[*STROKE_KINDS, RANDOM],
        default=RANDOM,
        help="kind of mark (default: random per sample)",
    )
    parser.add_argument(
        "--count", type=int, default=1, help="number of samples to write (default 1)"
    )
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=DEFAULT_MASK_THRESHOLD,
        help=(
            "soft coverage above which a pixel is in the binary mask "
            f"(default {DEFAULT_MASK_THRESHOLD})"
        ),
    )
    parser.add_argument(
        "--demo-slide",
        type=Path,
        metavar="SLIDE",
        help="whole-slide file to ink with a circle, a line, dots and a word",
    )
    parser.set_defaults(func=run_simulate)
    return parser


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``inkremove simulate``; return the process exit code."""
    if args.demo_slide is not None:
        return _run_demo_slide(args)
    if args.input is None:
        logger.error("missing INPUT image; pass a clean image or --demo-slide SLIDE")
        return 2
    if args.count < 1:
        logger.error("--count must be at least 1, got %d", args.count)
        return 2

    try:
        clean = load_rgb(args.input)
    except (OSError, UnidentifiedImageError) as error:
        logger.error(
            "cannot read %s as an image: %s; for a whole-slide file use --demo-slide",
            args.input,
            error,
        )
        return 2

    args.output.mkdir(parents=True, exist_ok=True)
    input_sha256 = hashlib.sha256(args.input.read_bytes()).hexdigest()
    children = np.random.SeedSequence(args.seed).spawn(args.count)
    for index, child in enumerate(children):
        result = simulate_ink(
            clean,
            rng=np.random.default_rng(child),
            colour=None if args.colour == RANDOM else args.colour,
            kind=None if args.kind == RANDOM else args.kind,
            mask_threshold=args.mask_threshold,
        )
        stem = args.output / f"{args.input.stem}-sim{index:03d}"
        Image.fromarray(result.inked).save(f"{stem}.png")
        Image.fromarray(result.mask * 255).save(f"{stem}-mask.png")
        # 16-bit PNG keeps the soft mask at 1/65535 resolution.
        Image.fromarray(np.rint(result.mask_soft * 65535).astype(np.uint16)).save(
            f"{stem}-soft.png"
        )
        np.save(f"{stem}-density.npy", result.density)
        record = {
            "input": str(args.input),
            "input_sha256": input_sha256,
            "seed": args.seed,
            "sample": index,
            **result.params,
        }
        Path(f"{stem}.json").write_text(json.dumps(record, indent=1))
        geometry = result.params["geometry"]
        kind = geometry.get("kind") if isinstance(geometry, dict) else None
        sys.stdout.write(f"wrote {stem}.png ({result.params['colour']} {kind})\n")
    return 0


def load_rgb(path: Path) -> NDArray[np.uint8]:
    """Read an image as (H, W, 3) uint8 RGB; transparent pixels become white."""
    with Image.open(path) as image:
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
        return np.asarray(image.convert("RGB"))


def _run_demo_slide(args: argparse.Namespace) -> int:
    from pipeline.simulate.demo_slide import write_demo_slide

    output: Path = args.output
    if output.suffix.lower() not in (".tif", ".tiff"):
        logger.error("with --demo-slide, -o must name a .tiff file, got %s", output)
        return 2
    try:
        record = write_demo_slide(args.demo_slide, output, seed=args.seed)
    except (OSError, ValueError) as error:
        logger.error("cannot write the demo slide from %s: %s", args.demo_slide, error)
        return 2
    sys.stdout.write(f"wrote {output} ({record['inked_fraction']:.1%} of pixels inked)\n")
    return 0
