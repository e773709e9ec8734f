"""Per-tile work at full resolution: read with context, mask, restore and compose."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.classify import TileDecision
from pipeline.compose import blend_weights, compose, ink_region
from pipeline.geometry import Box, PixelScale, TileGrid
from pipeline.inkrules import INK_COLOURS
from pipeline.io.slide import Slide
from pipeline.localise import PixelMask, component_regions, pixel_ink_mask
from pipeline.models.restorers import Restorer, load_restorer
from pipeline.options import RunOptions
from pipeline.progress import StageClock
from pipeline.restore import (
    RestoreStats,
    fill_background,
    measure_ink_vector,
    reference_ink_vector,
    remove_ink_optical_density,
)
from pipeline.screen import ScreeningResult

# Largest angle between a measured black-ink vector and a chromatic ink's vector for
# the black pixels to count as that ink.
BLACK_MERGE_DEGREES = 20.0

# Context read around each tile so that morphology, feathering and ink measurements
# near the tile edge see the same pixels as the neighbouring tile does.
CONTEXT_UM = 32.0


@dataclass(frozen=True)
class TileView:
    """A level-0 tile and the larger region read around it."""

    index: int
    tile: Box
    region: Box
    pixels: np.ndarray  # (region.height, region.width, 3) uint8

    @property
    def core(self) -> tuple[slice, slice]:
        """Row and column slices of the tile inside ``pixels``."""
        top, left = self.tile.y - self.region.y, self.tile.x - self.region.x
        return slice(top, top + self.tile.height), slice(left, left + self.tile.width)


@dataclass(frozen=True)
class Inspection:
    """The colour-rule mask of a tile and the window the classifiers look at."""

    index: int
    ink_fraction: float
    colour: str | None
    window: np.ndarray | None  # (S, S, 3) uint8 when the mask found ink, else None


@dataclass
class TileResult:
    """The output pixels of a processed tile."""

    pixels: np.ndarray  # (tile.height, tile.width, 3) uint8
    mask: np.ndarray  # (tile.height, tile.width) bool: ink found in this tile
    changed: bool
    regions: list[tuple[Box, int]] = field(default_factory=list)
    stats: RestoreStats | None = None


class TileProcessor:
    """Runs the full-resolution stages on one tile at a time."""

    def __init__(self, slide: Slide, grid: TileGrid, screening: ScreeningResult,
                 scale: PixelScale, options: RunOptions, clock: StageClock, *,
                 device: str = "cpu", restorer: Restorer | None = None) -> None:
        self.slide = slide
        self.grid = grid
        self.screening = screening
        self.scale = scale
        self.options = options
        self.clock = clock
        self.device = device
        self._restorer = restorer
        self.window_size = max(options.classify_window_px, grid.tile_width, grid.tile_height)
        shortest_tile = min(grid.tile_width, grid.tile_height)
        self.margin = max(scale.radius(CONTEXT_UM),
                          math.ceil((self.window_size - shortest_tile) / 2))

    def view(self, index: int) -> TileView:
        """Read tile ``index`` with its context margin (clipped to the image)."""
        tile = self.grid.box(index)
        region = tile.expanded(self.margin).clipped(self.grid.width, self.grid.height)
        with self.clock.measure("read_tiles"):
            pixels = self.slide.read_region(region.x, region.y, region.width, region.height)
        return TileView(index=index, tile=tile, region=region, pixels=pixels)

    def mask(self, view: TileView) -> PixelMask:
        """Compute the full-resolution ink mask of the whole view."""
        with self.clock.measure("localise"):
            gate = self.screening.candidate_crop(view.region)
            return pixel_ink_mask(view.pixels, glass=self.screening.glass, gate=gate,
                                  scale=self.scale, options=self.options,
                                  ink_model=_TileInk(self, view.tile))

    def inspect(self, index: int) -> Inspection:
        """Mask a tile and, when it contains ink, cut the classifier window around it."""
        view = self.view(index)
        pixel_mask = self.mask(view)
        rows, columns = view.core
        fraction = float(pixel_mask.mask[rows, columns].mean())
        window = None
        if fraction >= self.options.min_tile_ink_fraction:
            window = self._window(view)
        return Inspection(index=index, ink_fraction=fraction,
                          colour=pixel_mask.dominant_colour, window=window)

    def _window(self, view: TileView) -> np.ndarray:
        """Return a (S, S, 3) window centred on the tile; outside the image is white."""
        size = self.window_size
        window_box = Box(view.tile.x + view.tile.width // 2 - size // 2,
                         view.tile.y + view.tile.height // 2 - size // 2, size, size)
        inside = window_box.clipped(self.grid.width, self.grid.height)
        if inside != window_box.clipped(view.region.right, view.region.bottom) or \
                inside.x < view.region.x or inside.y < view.region.y:
            # Edge tiles are smaller than the grid, so their window leaves the context read.
            with self.clock.measure("read_tiles"):
                return self.slide.read_region(window_box.x, window_box.y, size, size)
        window = np.full((size, size, 3), 255, dtype=np.uint8)
        source = (slice(inside.y - view.region.y, inside.bottom - view.region.y),
                  slice(inside.x - view.region.x, inside.right - view.region.x))
        target = (slice(inside.y - window_box.y, inside.bottom - window_box.y),
                  slice(inside.x - window_box.x, inside.right - window_box.x))
        window[target] = view.pixels[source]
        return window

    def restore(self, index: int, decision: TileDecision) -> TileResult:
        """Restore the ink in a tile the classifiers accepted; returns the tile's output."""
        view = self.view(index)
        pixel_mask = self.mask(view)
        rows, columns = view.core
        original = view.pixels[rows, columns]
        if not pixel_mask.mask.any():
            return TileResult(pixels=original, mask=np.zeros(original.shape[:2], dtype=bool),
                              changed=False)

        stats = None
        on_glass = decision.kind == "background"
        # Ink on glass fades out softly; on glass a wider fill costs nothing.
        dilation_um = self.options.background_dilation_um if on_glass else self.options.dilation_um
        region = ink_region(pixel_mask.mask, dilation_px=self.scale.pixels(dilation_um))
        with self.clock.measure("restore"):
            if on_glass:
                restored = fill_background(view.pixels, glass=self.screening.glass)
            elif self.options.restore_method == "od":
                restored, stats = remove_ink_optical_density(
                    view.pixels, pixel_mask.mask, glass=self.screening.glass,
                    stain_vectors=self.screening.stain_vectors,
                    colour=pixel_mask.dominant_colour, colour_map=pixel_mask.colour_map,
                    ink_vectors=pixel_mask.ink_vectors, scale=self.scale, options=self.options)
            else:
                restored = self.restorer().restore_many([view.pixels], [region])[0]
        with self.clock.measure("compose"):
            weights = blend_weights(region,
                                    feather_px=self.scale.pixels(self.options.feather_um))
            output = compose(view.pixels, restored, weights)[rows, columns]
        regions = component_regions(pixel_mask.mask[rows, columns], origin=view.tile)
        changed = not np.array_equal(output, original)
        # The mask output marks the ink region: the only pixels that may have changed.
        return TileResult(pixels=output, mask=region[rows, columns], changed=changed,
                          regions=regions, stats=stats)

    def restorer(self) -> Restorer:
        """Return the learned restorer of ``options.restore_method``, loading it on first use."""
        if self._restorer is None:
            self._restorer = load_restorer(self.options.restore_method, self.device)
        return self._restorer

    def ink_vectors(self, tile: Box, region: np.ndarray, mask: np.ndarray,
                    colour_map: np.ndarray) -> dict[str, np.ndarray]:
        """Return a vector per colour: from screening, else measured here, else the reference."""
        screened = self.screening.ink_vectors_for(tile)
        vectors: dict[str, np.ndarray] = {}
        measured: set[str] = set()
        for index in np.unique(colour_map[mask]):
            colour = INK_COLOURS[int(index)]
            vector = screened.get(colour)
            if vector is None:
                colour_mask = mask & (colour_map == index)
                vector = measure_ink_vector(region, colour_mask, glass=self.screening.glass,
                                            scale=self.scale, options=self.options,
                                            exclude=mask & ~colour_mask)
            if vector is None:
                vector = reference_ink_vector(colour)
            else:
                measured.add(colour)
            vectors[colour] = vector
        return _merge_dark_ink(vectors, measured)


def _merge_dark_ink(vectors: dict[str, np.ndarray], measured: set[str]) -> dict[str, np.ndarray]:
    """Use a chromatic ink's vector for "black" pixels that are that ink over dense tissue.

    Green or blue ink over nuclei passes the black rule. When a chromatic ink is present
    and the black pixels' own vector is unknown or within BLACK_MERGE_DEGREES of it,
    they are the same ink, and one vector keeps the restored stroke uniform.
    """
    black = vectors.get("black")
    chromatic = {colour: vector for colour, vector in vectors.items() if colour != "black"}
    if black is None or not chromatic:
        return vectors
    closest = max(chromatic.values(), key=lambda vector: float(vector @ black))
    if "black" not in measured or float(closest @ black) >= np.cos(np.radians(BLACK_MERGE_DEGREES)):
        vectors["black"] = closest
    return vectors


@dataclass(frozen=True)
class _TileInk:
    """The InkModel of one tile: the processor's ink vector lookup bound to the tile."""

    processor: TileProcessor
    tile: Box

    @property
    def stain_vectors(self) -> np.ndarray:
        """The slide's H&E OD vectors from screening."""
        return self.processor.screening.stain_vectors

    def vectors_for(self, region: np.ndarray, mask: np.ndarray,
                    colour_map: np.ndarray) -> dict[str, np.ndarray]:
        """Return the ink OD vector of each colour present in the tile."""
        return self.processor.ink_vectors(self.tile, region, mask, colour_map)
