import numpy as np

from pipeline.geometry import Box, PixelScale, TileGrid, merge_boxes
from pipeline.morphology import (
    closed,
    component_boxes,
    dilated,
    opened,
    without_small_components,
    without_small_holes,
)


def test_grid_edge_tiles_are_clipped():
    grid = TileGrid(width=1000, height=700, tile_width=512, tile_height=512)
    assert (grid.columns, grid.rows, len(grid)) == (2, 2, 4)
    assert grid.box(3) == Box(512, 512, 488, 188)


def test_grid_tiles_touching_box():
    grid = TileGrid(width=1000, height=700, tile_width=256, tile_height=256)
    assert grid.indices_touching(Box(250, 10, 20, 300)) == [0, 1, 4, 5]
    assert grid.indices_touching(Box(2000, 2000, 5, 5)) == []


def test_box_scaling_rounds_outwards():
    assert Box(3, 5, 10, 10).scaled(1.5) == Box(4, 7, 16, 16)


def test_merge_boxes_joins_touching():
    merged = merge_boxes([Box(0, 0, 10, 10), Box(10, 0, 5, 5), Box(50, 50, 2, 2)], gap=1)
    assert sorted(merged, key=lambda box: box.x) == [Box(0, 0, 15, 10), Box(50, 50, 2, 2)]


def test_pixel_scale_conversions():
    scale = PixelScale(mpp=0.5)
    assert scale.pixels(10.0) == 20.0
    assert scale.radius(10.0, downsample=4) == 5
    assert scale.area(100.0) == 400


def test_morphology_helpers():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 5:25] = True
    mask[12:15, 12:15] = False  # a hole
    mask[35, 35] = True  # a speck
    assert without_small_holes(mask, 20)[13, 13]
    assert not without_small_components(mask, 5)[35, 35]
    assert not opened(mask, 1)[35, 35]
    assert closed(mask, 2)[13, 13]
    assert dilated(mask, 2)[3, 10]
    boxes = component_boxes(mask)
    assert (Box(5, 5, 20, 20), 391) in boxes
