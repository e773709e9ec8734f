"""Training crops for the restoration networks: clean tissue and the same tissue inked.

Crops are 256 x 256 px from the clean source images of one split
(``pipeline.train.sources``). A crop is kept when at least ``MIN_TISSUE_SHARE`` of it
is stained tissue, because ink on glass is filled with the glass colour and never
reaches a network. The simulator draws one random stroke set on each crop, so every crop gives a
pair (inked, clean) and the simulator's ink mask.

Each crop also gets its cluster share: the share of its pixels that the detector's
``cluster`` labelling rule (``pipeline.train.detector_data.cluster_mask``: densely
packed basophilic cells) marks. Crops with a share of at least ``DENSE_CLUSTER_SHARE``
belong to the ``dense`` domain, the others to ``sparse``; in a run the detector's
``cluster`` boxes make the same split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from pipeline.simulate import simulate_ink
from pipeline.train.detector_data import cluster_mask
from pipeline.train.sources import SourceImage

logger = logging.getLogger(__name__)

Domain = Literal["single", "dense", "sparse"]
DOMAINS: tuple[Domain, ...] = ("single", "dense", "sparse")

CROP_PX = 256
MIN_TISSUE_SHARE = 0.5
DENSE_CLUSTER_SHARE = 0.2
# Attempts per wanted crop before a source is given up as too empty.
MAX_ATTEMPTS_PER_CROP = 50


@dataclass(frozen=True)
class CropSet:
    """N crops of one split: clean, inked and the ink mask, plus each crop's domain."""

    clean: NDArray[np.uint8]  # (N, 256, 256, 3)
    inked: NDArray[np.uint8]  # (N, 256, 256, 3)
    mask: NDArray[np.uint8]  # (N, 256, 256), 1 where the simulated ink changed a pixel
    cluster_share: NDArray[np.float32]  # (N,) share of pixels in dense-cell clusters

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def dense(self) -> NDArray[np.bool_]:
        """Return (N,) True for crops of the dense domain."""
        return self.cluster_share >= DENSE_CLUSTER_SHARE

    def select(self, domain: Domain) -> CropSet:
        """Return the crops of ``domain``; ``single`` keeps every crop."""
        if domain == "single":
            return self
        keep = self.dense() if domain == "dense" else ~self.dense()
        return CropSet(clean=self.clean[keep], inked=self.inked[keep], mask=self.mask[keep],
                       cluster_share=self.cluster_share[keep])


def generate_crops(sources: Sequence[SourceImage], *, count: int, seed: int,
                   progress: Callable[[int, int], None] | None = None) -> CropSet:
    """Draw ``count`` tissue crops round-robin over ``sources`` and ink each one.

    Equal seeds and sources give identical crops. Raises ValueError when no source has
    enough tissue for a crop.
    """
    rng = np.random.default_rng(seed)
    usable = [source for source in sources
              if source.height >= CROP_PX and source.width >= CROP_PX]
    clean: list[NDArray[np.uint8]] = []
    inked: list[NDArray[np.uint8]] = []
    masks: list[NDArray[np.uint8]] = []
    shares: list[float] = []
    attempts = 0
    while len(clean) < count:
        if attempts > MAX_ATTEMPTS_PER_CROP * count:
            raise ValueError(f"found only {len(clean)} of {count} crops with "
                             f"{MIN_TISSUE_SHARE:.0%} tissue in {len(usable)} sources")
        source = usable[attempts % len(usable)]
        attempts += 1
        y = int(rng.integers(0, source.height - CROP_PX + 1))
        x = int(rng.integers(0, source.width - CROP_PX + 1))
        if source.tissue_fraction(x, y, CROP_PX) < MIN_TISSUE_SHARE:
            continue
        crop = np.ascontiguousarray(source.rgb[y:y + CROP_PX, x:x + CROP_PX])
        crop = np.rot90(crop, int(rng.integers(4))).copy()
        simulated = simulate_ink(crop, rng=rng)
        if not simulated.mask.any():
            continue
        clean.append(crop)
        inked.append(simulated.inked)
        masks.append(simulated.mask)
        shares.append(float(cluster_mask(crop).mean()))
        if progress is not None:
            progress(len(clean), count)
    return CropSet(clean=np.stack(clean), inked=np.stack(inked), mask=np.stack(masks),
                   cluster_share=np.asarray(shares, dtype=np.float32))
