"""Pyramid arithmetic in large-image's z/x/y convention.

z = 0 is the lowest resolution and z = levels - 1 is level 0 (full resolution), so the
downsample of level z is 2 ** (levels - 1 - z). OpenSeadragon's default TileSource uses
the same power-of-two numbering when given minLevel 0 and maxLevel levels - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PyramidGeometry:
    """Size of level 0 and of the tiles, and the number of pyramid levels."""

    size_x: int
    size_y: int
    tile_width: int
    tile_height: int
    levels: int

    def downsample(self, z: int) -> int:
        """Return the factor between level-0 pixels and pixels of level z."""
        return 2 ** (self.levels - 1 - z)

    def level_size(self, z: int) -> tuple[int, int]:
        """Return the (width, height) in pixels of level z."""
        # Rounded up, as OpenSeadragon does, so a half pixel at the edge still gets a tile.
        factor = self.downsample(z)
        return math.ceil(self.size_x / factor), math.ceil(self.size_y / factor)

    def tile_count(self, z: int) -> tuple[int, int]:
        """Return the number of tile columns and rows of level z."""
        width, height = self.level_size(z)
        return math.ceil(width / self.tile_width), math.ceil(height / self.tile_height)

    def contains(self, z: int, x: int, y: int) -> bool:
        """Return True when tile (x, y) exists at level z."""
        if not 0 <= z < self.levels or x < 0 or y < 0:
            return False
        columns, rows = self.tile_count(z)
        return x < columns and y < rows

    def tile_size(self, z: int, x: int, y: int) -> tuple[int, int]:
        """Return the (width, height) of tile (x, y) at level z; edge tiles are smaller."""
        width, height = self.level_size(z)
        return (
            min(self.tile_width, width - x * self.tile_width),
            min(self.tile_height, height - y * self.tile_height),
        )
