"""Marker-ink colours as optical densities, calibrated on real scans.

Each colour is the optical density (OD, base 10) that one unit of ink adds to the red,
green and blue channels of a brightfield scan: ``inked = clean * 10 ** (-density * od)``.
The numbers below are the output of ``python -m pipeline.simulate.calibration`` on the
real images that the project's data folder provides:

- blue: median of ``OD(inked) - OD(clean)`` over the inked pixels of the 8 registered
  before/after pairs at x = 39952 (``paired-blue-ink``). The pairs at x = 40208 are kept
  for restoration benchmarks and the pairs at x = 40080 overlap both, so neither is used.
- green, red, black: median OD of the hand-masked pen strokes in the HistoQC thumbnails
  (``ink/thumbnails-with-masks``) relative to the median glass colour next to each
  stroke, using only stroke pixels that lie on glass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

ColourName = Literal["blue", "green", "black", "red"]


@dataclass(frozen=True)
class InkColour:
    """Optical density added by one unit of an ink, per RGB channel."""

    name: str
    od_rgb: tuple[float, float, float]
    source: str

    def od_array(self) -> NDArray[np.float32]:
        """Return the optical density as a float32 array of shape (3,)."""
        return np.asarray(self.od_rgb, dtype=np.float32)


INK_COLOURS: dict[str, InkColour] = {
    "blue": InkColour(
        name="blue",
        od_rgb=(0.644, 0.260, 0.043),
        source="median added OD over inked pixels of the 8 paired-blue-ink pairs at x=39952",
    ),
    "green": InkColour(
        name="green",
        od_rgb=(0.425, 0.110, 0.146),
        source="median OD of masked strokes on glass in thumbnails-with-masks/pen-green.png",
    ),
    "red": InkColour(
        name="red",
        od_rgb=(0.062, 0.778, 0.574),
        source="median OD of masked strokes on glass in thumbnails-with-masks/pen-red.png",
    ),
    "black": InkColour(
        name="black",
        od_rgb=(1.056, 1.123, 1.264),
        source="median OD of masked strokes on glass in thumbnails-with-masks/pen-black.png",
    ),
}

COLOUR_NAMES: tuple[str, ...] = tuple(INK_COLOURS)


def resolve_colour(colour: str | InkColour) -> InkColour:
    """Return the InkColour for a name such as ``"blue"``, or the colour itself."""
    if isinstance(colour, InkColour):
        return colour
    try:
        return INK_COLOURS[colour]
    except KeyError:
        raise ValueError(
            f"unknown ink colour {colour!r}; expected one of {', '.join(COLOUR_NAMES)}"
        ) from None
