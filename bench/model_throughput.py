"""Measure the tiles per second of every shipped network and print a Markdown table.

Usage: .venv/bin/python bench/model_throughput.py [--device cpu|cuda] [--batches 1,2,4,8,16]

Each network runs on random uint8 tiles of its working size through the same wrapper
the pipeline uses (preprocessing, batching, autocast on CUDA), after one warm-up call.
A "tile" is one network input: 512 px tiles for the classifiers (resized to 128 px
inside), 256 px tiles for the detector and the restoration networks.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from pipeline.models import load_models  # noqa: E402
from pipeline.models.detector import load_detector  # noqa: E402
from pipeline.models.restorers import load_restorer  # noqa: E402

MIN_SECONDS = 3.0


def measure(run: Callable[[np.ndarray], object], tiles: np.ndarray, device: str) -> float:
    """Return tiles per second of ``run`` on ``tiles``, repeated for at least MIN_SECONDS."""
    run(tiles)  # warm-up: allocation, kernel selection
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < MIN_SECONDS:
        run(tiles)
        count += len(tiles)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> int:
    """Time every network at each batch size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,2,4,8,16")
    args = parser.parse_args()
    batches = [int(value) for value in args.batches.split(",")]
    rng = np.random.default_rng(0)

    models = load_models(args.device)
    detector = load_detector(args.device)
    networks: dict[str, tuple[int, Callable[[np.ndarray], object]]] = {
        "ink classifier": (512, models.ink.predict),
        "background classifier": (512, models.background.predict),
        "detector": (256, detector.detect),
    }
    for method in ("cyclegan", "paired", "cyclegan-dense-sparse"):
        restorer = load_restorer(method, args.device)
        if hasattr(restorer, "batch_size"):
            restorer.batch_size = max(batches)

        def restore(tiles: np.ndarray, restorer=restorer) -> object:
            everywhere = np.ones(tiles.shape[1:3], bool)
            return restorer.restore_many(list(tiles), [everywhere] * len(tiles))

        networks[method] = (256, restore)

    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| network | tile px | " + " | ".join(f"batch {size}" for size in batches)
          + " | best |")
    print("|---|---|" + "---|" * len(batches) + "---|")
    for name, (size, run) in networks.items():
        rates = []
        for batch in batches:
            tiles = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            rates.append(measure(run, tiles, args.device))
        best = int(np.argmax(rates))
        print(f"| {name} | {size} | " + " | ".join(f"{rate:.1f}" for rate in rates)
              + f" | {rates[best]:.1f} at batch {batches[best]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
