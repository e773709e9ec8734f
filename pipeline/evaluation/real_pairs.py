"""Real before/after pairs of blue marker ink, split by slide position.

Each file ``pair_x<X>_y<Y>.jpg`` is 512x256: the left half is the clean scan, the right
half the same region scanned with blue ink on the glass. All pairs come from one slide
with tile origins every 128 px, so neighbouring 256-px tiles overlap by half. Splitting at
random would put the same tissue in calibration and test; the split is by x instead:

- x = 39952: calibration (methods may fit or train on these 8 pairs),
- x = 40208: test (scored, never fitted),
- x = 40080: never used, because it overlaps both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

PairSplit = Literal["calibration", "test"]

SPLIT_X: dict[PairSplit, int] = {"calibration": 39952, "test": 40208}
EXCLUDED_X = 40080
_NAME = re.compile(r"pair_x(?P<x>\d+)_y(?P<y>\d+)\.jpg$")


@dataclass(frozen=True)
class RealPair:
    """One registered clean/inked pair; both images are (256, 256, 3) uint8."""

    name: str
    x: int
    y: int
    clean: NDArray[np.uint8]
    inked: NDArray[np.uint8]


def load_real_pairs(folder: Path, split: PairSplit) -> list[RealPair]:
    """Return the pairs of one split, sorted by y."""
    if split not in SPLIT_X:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_X)}")
    split_x = SPLIT_X[split]
    pairs = []
    for path in sorted(Path(folder).glob("pair_x*_y*.jpg")):
        match = _NAME.search(path.name)
        if match is None or int(match["x"]) != split_x:
            continue
        side_by_side = np.asarray(Image.open(path).convert("RGB"))  # (256, 512, 3)
        half = side_by_side.shape[1] // 2
        pairs.append(
            RealPair(
                name=path.stem,
                x=int(match["x"]),
                y=int(match["y"]),
                clean=np.ascontiguousarray(side_by_side[:, :half]),
                inked=np.ascontiguousarray(side_by_side[:, half:]),
            )
        )
    if not pairs:
        raise FileNotFoundError(
            f"no pair_x{split_x}_y*.jpg files in {folder}; point the command at the "
            "paired-blue-ink folder"
        )
    return sorted(pairs, key=lambda pair: pair.y)
