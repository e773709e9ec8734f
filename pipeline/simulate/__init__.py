"""Simulated marker ink on clean H&E images, for training data and benchmarks.

``simulate_ink(clean, seed=..., colour=..., kind=...)`` draws pen strokes with a
Beer-Lambert ink model whose colours are calibrated on real scans (see ``colours``).
"""

from pipeline.simulate.colours import COLOUR_NAMES, INK_COLOURS, InkColour, resolve_colour
from pipeline.simulate.render import (
    DEFAULT_MASK_THRESHOLD,
    InkStyle,
    SimulatedInk,
    apply_ink,
    render_paths,
    sample_style,
    simulate_ink,
)
from pipeline.simulate.strokes import STROKE_KINDS, StrokeKind, StrokePath, random_paths

__all__ = [
    "COLOUR_NAMES",
    "DEFAULT_MASK_THRESHOLD",
    "INK_COLOURS",
    "STROKE_KINDS",
    "InkColour",
    "InkStyle",
    "SimulatedInk",
    "StrokeKind",
    "StrokePath",
    "apply_ink",
    "random_paths",
    "render_paths",
    "resolve_colour",
    "sample_style",
    "simulate_ink",
]
