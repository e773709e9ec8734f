"""Restoration methods and the ink detector, wrapped for the benchmark.

Every method has the same signature: ``restore(inked, mask, context) -> restored``,
with (H, W, 3) uint8 images and an (H, W) mask that is non-zero where the method may
change pixels. Each method blends its result in with the pipeline's feathered weights
inside the mask, so nothing outside the mask changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from pipeline.compose import blend_weights, compose, ink_region
from pipeline.evaluation.baselines import restore_telea, restore_unchanged, restore_white_fill
from pipeline.geometry import PixelScale
from pipeline.localise import PixelMask, pixel_ink_mask
from pipeline.models.restorers import load_restorer
from pipeline.optical import (
    estimate_glass,
    estimate_stain_vectors,
    optical_density,
)
from pipeline.options import RunOptions
from pipeline.restore import remove_ink_optical_density


@dataclass(frozen=True)
class TileContext:
    """Tile facts that a method may use besides the pixels.

    In a pipeline run the glass colour and the stain vectors come from screening the
    whole slide, and the pen colour comes from the colour rules. The benchmark supplies
    the same facts from data that is not scored.
    """

    glass: NDArray[np.float32]  # (3,) glass colour, 0..255
    stain_vectors: NDArray[np.float32] | None  # (2, 3) H and E OD directions, or None
    colour: str | None  # dominant pen colour found by the colour rules
    scale: PixelScale
    options: RunOptions


Restorer = Callable[[NDArray[np.uint8], NDArray[np.generic], TileContext], NDArray[np.uint8]]


def restore_optical_density(inked: NDArray[np.uint8], mask: NDArray[np.generic],
                            context: TileContext) -> NDArray[np.uint8]:
    """Remove ink by three-stain optical-density unmixing, as the pipeline does."""
    selected = np.asarray(mask) != 0
    if not selected.any():
        return inked.copy()
    stain_vectors = context.stain_vectors
    if stain_vectors is None:
        stain_vectors = estimate_stain_vectors(optical_density(inked[~selected], context.glass))
    restored, _ = remove_ink_optical_density(
        inked, selected, glass=context.glass, stain_vectors=stain_vectors,
        colour=context.colour, scale=context.scale, options=context.options,
    )
    return _blend(inked, restored, selected, context)


def _blend(inked: NDArray[np.uint8], restored: NDArray[np.floating],
           selected: NDArray[np.bool_], context: TileContext) -> NDArray[np.uint8]:
    weights = blend_weights(selected,
                            feather_px=context.scale.pixels(context.options.feather_um))
    return compose(inked, restored, weights)


def learned_method(name: str) -> Restorer:
    """Return the benchmark wrapper of a learned restoration method, run on the CPU."""

    def restore(inked: NDArray[np.uint8], mask: NDArray[np.generic],
                context: TileContext) -> NDArray[np.uint8]:
        selected = np.asarray(mask) != 0
        if not selected.any():
            return inked.copy()
        restored = load_restorer(name, "cpu").restore_many([inked], [selected])[0]
        return _blend(inked, restored, selected, context)

    restore.__name__ = f"restore_{name.replace('-', '_')}"
    return restore


METHODS: dict[str, Restorer] = {
    "unchanged": lambda inked, mask, context: restore_unchanged(inked, mask),
    "white-fill": lambda inked, mask, context: restore_white_fill(inked, mask),
    "telea": lambda inked, mask, context: restore_telea(inked, mask),
    "od": restore_optical_density,
    "cyclegan": learned_method("cyclegan"),
    "cyclegan-dense-sparse": learned_method("cyclegan-dense-sparse"),
    "paired": learned_method("paired"),
}


def detect_ink(inked: NDArray[np.uint8], context: TileContext) -> PixelMask:
    """Return the pipeline's full-resolution pixel ink mask of one tile."""
    everywhere = np.ones(inked.shape[:2], dtype=bool)
    return pixel_ink_mask(inked, glass=context.glass, gate=everywhere, scale=context.scale,
                          options=context.options)


def detected_region(inked: NDArray[np.uint8], context: TileContext) -> NDArray[np.bool_]:
    """Return the region a pipeline run restores in a tile: the ink mask grown by the dilation."""
    mask = detect_ink(inked, context).mask
    return ink_region(mask, dilation_px=context.scale.pixels(context.options.dilation_um))


def tile_context(image: NDArray[np.uint8], *, mpp: float, options: RunOptions,
                 glass: NDArray[np.float32] | None = None,
                 stain_vectors: NDArray[np.float32] | None = None) -> TileContext:
    """Build a tile's context, detecting its pen colour with the colour rules.

    Without ``glass`` the glass colour is estimated from the tile itself.
    """
    context = TileContext(glass=estimate_glass(image) if glass is None else glass,
                          stain_vectors=stain_vectors, colour=None,
                          scale=PixelScale(mpp=mpp), options=options)
    return replace(context, colour=detect_ink(image, context).dominant_colour)
