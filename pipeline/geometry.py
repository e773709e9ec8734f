"""Boxes and tile grids in level-0 ("baseline") pixel coordinates."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle: left, top, width, height in pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        """Exclusive right edge."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """Exclusive bottom edge."""
        return self.y + self.height

    @property
    def area(self) -> int:
        """Number of pixels covered."""
        return self.width * self.height

    def scaled(self, factor: float) -> Box:
        """Return the box with every edge multiplied by ``factor``, rounded outwards."""
        left, top = math.floor(self.x * factor), math.floor(self.y * factor)
        return Box(left, top, math.ceil(self.right * factor) - left,
                   math.ceil(self.bottom * factor) - top)

    def translated(self, dx: int, dy: int) -> Box:
        """Return the box moved by (dx, dy)."""
        return Box(self.x + dx, self.y + dy, self.width, self.height)

    def expanded(self, margin: int) -> Box:
        """Return the box grown by ``margin`` pixels on every side."""
        return Box(self.x - margin, self.y - margin, self.width + 2 * margin,
                   self.height + 2 * margin)

    def clipped(self, width: int, height: int) -> Box:
        """Return the part of the box inside an image of the given size (may be empty)."""
        left, top = max(0, self.x), max(0, self.y)
        right, bottom = min(width, self.right), min(height, self.bottom)
        return Box(left, top, max(0, right - left), max(0, bottom - top))

    def intersects(self, other: Box, *, gap: int = 0) -> bool:
        """Return whether the boxes overlap or lie within ``gap`` pixels of each other."""
        return (self.x <= other.right + gap and other.x <= self.right + gap
                and self.y <= other.bottom + gap and other.y <= self.bottom + gap)

    def union(self, other: Box) -> Box:
        """Return the smallest box containing both."""
        left, top = min(self.x, other.x), min(self.y, other.y)
        return Box(left, top, max(self.right, other.right) - left,
                   max(self.bottom, other.bottom) - top)


@dataclass(frozen=True)
class TileGrid:
    """Regular tiles over an image, numbered row by row from the top-left corner."""

    width: int
    height: int
    tile_width: int
    tile_height: int

    @property
    def columns(self) -> int:
        """Tiles per row."""
        return math.ceil(self.width / self.tile_width)

    @property
    def rows(self) -> int:
        """Tiles per column."""
        return math.ceil(self.height / self.tile_height)

    def __len__(self) -> int:
        return self.columns * self.rows

    def box(self, index: int) -> Box:
        """Return the part of tile ``index`` inside the image."""
        row, column = divmod(index, self.columns)
        left, top = column * self.tile_width, row * self.tile_height
        return Box(left, top, min(self.tile_width, self.width - left),
                   min(self.tile_height, self.height - top))

    def boxes(self) -> Iterator[tuple[int, Box]]:
        """Yield (index, box) for every tile in row-major order."""
        for index in range(len(self)):
            yield index, self.box(index)

    def indices_touching(self, box: Box) -> list[int]:
        """Return the indices of tiles that overlap ``box``."""
        clipped = box.clipped(self.width, self.height)
        if clipped.area == 0:
            return []
        first_column = clipped.x // self.tile_width
        last_column = (clipped.right - 1) // self.tile_width
        first_row = clipped.y // self.tile_height
        last_row = (clipped.bottom - 1) // self.tile_height
        return [row * self.columns + column
                for row in range(first_row, last_row + 1)
                for column in range(first_column, last_column + 1)]


def merge_boxes(boxes: list[Box], *, gap: int = 0) -> list[Box]:
    """Merge boxes that overlap or lie within ``gap`` pixels until none do."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        result: list[Box] = []
        for box in merged:
            for position, existing in enumerate(result):
                if existing.intersects(box, gap=gap):
                    result[position] = existing.union(box)
                    changed = True
                    break
            else:
                result.append(box)
        merged = result
    return merged


@dataclass(frozen=True)
class PixelScale:
    """Micrometres per level-0 pixel, with a flag when the file recorded none."""

    mpp: float
    assumed: bool = False

    def pixels(self, micrometres: float, *, downsample: float = 1.0) -> float:
        """Convert a length in micrometres to pixels at ``downsample``."""
        return micrometres / (self.mpp * downsample)

    def radius(self, micrometres: float, *, downsample: float = 1.0) -> int:
        """Convert a length to a whole-pixel radius (0 when under half a pixel)."""
        return round(self.pixels(micrometres, downsample=downsample))

    def area(self, square_micrometres: float, *, downsample: float = 1.0) -> int:
        """Convert an area in square micrometres to a whole number of pixels (at least 1)."""
        return max(1, round(square_micrometres / (self.mpp * downsample) ** 2))
