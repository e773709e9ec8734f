"""Time the ink-removal pipeline on the sample slides and print a Markdown table.

Usage: .venv/bin/python bench/pipeline_speed.py [--device cpu|cuda] [SLIDE ...]
Without slide arguments it times every readable sample in ../shared/data/ink and
../shared/data/slides (or $INKWEB_TEST_DATA). Peak memory is the process's maximum
resident set size, which only grows, so slides are timed largest last.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline import open_slide, run_pipeline  # noqa: E402
from pipeline.errors import SlideReadError  # noqa: E402
from pipeline.models import load_models  # noqa: E402

DEFAULT_FILES = [
    "ink/tile-clean-lung.png",
    "ink/tile-green-pen-on-tissue.png",
    "ink/tcga-red-pen.png",
    "ink/tcga-green-pen.png",
    "ink/slide-thumbnail-red-green-black-pen.png",
    "slides/cmu-1-small-region.svs",
    "slides/tcga-cr-7395-jp2k.svs",
    "slides/yb10kx5k-zstd.tiff",
]


def main() -> int:
    """Run the pipeline once per slide and print one table row per slide."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slides", nargs="*", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = Path(os.environ.get("INKWEB_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))
    slides = args.slides or [data / name for name in DEFAULT_FILES if (data / name).exists()]

    started = time.perf_counter()
    models = load_models(args.device)
    print(f"models loaded in {time.perf_counter() - started:.2f} s on {args.device}")
    print()
    print("| slide | size (px) | ink found | changed tiles / total | wall time (s) "
          "| peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for path in slides:
        try:
            with open_slide(path) as slide:
                size = f"{slide.info.width}x{slide.info.height}"
        except SlideReadError as error:
            print(f"| {path.name} | rejected: {error} | | | | |")
            continue
        with tempfile.TemporaryDirectory() as output_dir:
            started = time.perf_counter()
            report = run_pipeline(path, output_dir, device=args.device, models=models)
            elapsed = time.perf_counter() - started
        tiles = report["tiles"]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {path.name} | {size} | {'yes' if report['ink_found'] else 'no'} "
            f"| {tiles['changed']} / {tiles['total']} | {elapsed:.2f} | {peak_mb:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
