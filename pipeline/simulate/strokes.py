"""Pen-stroke geometry: lines, circles, arrows, dots, cursive scribbles and block letters.

Every generator returns centre lines (``StrokePath``) in pixel coordinates of the canvas
it is drawn on, with a radius and a pen pressure at each point. Rasterising them is the
job of ``pipeline.simulate.render``. All randomness comes from the numpy Generator passed
in, so equal generator states give equal paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

StrokeKind = Literal["line", "circle", "arrow", "dots", "scribble", "word"]
STROKE_KINDS: tuple[str, ...] = get_args(StrokeKind)

# Marks that pathologists write on slides: extraprostatic extension, carcinoma, tumour,
# lymph node, perineural invasion, ductal carcinoma in situ, lymphovascular invasion.
PATHOLOGY_WORDS: tuple[str, ...] = ("EPE", "CA", "TU", "LN", "PNI", "DCIS", "LVI", "HG", "R", "L")


@dataclass(frozen=True)
class StrokePath:
    """One continuous pen stroke as a polyline with a radius and a pressure per point."""

    points: NDArray[np.float64]  # (N, 2) x, y in canvas pixels
    radius_px: NDArray[np.float64]  # (N,) half the stroke width
    pressure: NDArray[np.float64]  # (N,) relative ink density, > 0

    def to_json(self) -> dict[str, list[list[float]] | list[float]]:
        """Return the path as JSON-safe lists rounded to 0.1 px and 0.001 pressure."""
        return {
            "points": np.round(self.points, 1).tolist(),
            "radius_px": np.round(self.radius_px, 2).tolist(),
            "pressure": np.round(self.pressure, 3).tolist(),
        }


def smooth_profile(
    rng: np.random.Generator, count: int, *, amplitude: float
) -> NDArray[np.float64]:
    """Return ``count`` values near 1 that vary smoothly by about +/- ``amplitude``."""
    t = np.linspace(0.0, 1.0, max(count, 1))
    profile = np.ones_like(t)
    for _ in range(2):
        frequency = rng.uniform(0.3, 2.0)
        phase = rng.uniform(0.0, 2.0 * math.pi)
        profile += 0.5 * amplitude * np.sin(2.0 * math.pi * frequency * t + phase)
    return np.clip(profile, 0.2, None)


def resample_polyline(points: NDArray[np.float64], spacing_px: float) -> NDArray[np.float64]:
    """Return points spaced ``spacing_px`` apart along the polyline, ends included."""
    if len(points) < 2:
        return points.copy()
    segment = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arclength = np.concatenate([[0.0], np.cumsum(segment)])
    total = float(arclength[-1])
    if total == 0.0:
        return points[:1].copy()
    count = max(math.ceil(total / max(spacing_px, 1e-3)) + 1, 2)
    targets = np.linspace(0.0, total, count)
    x = np.interp(targets, arclength, points[:, 0])
    y = np.interp(targets, arclength, points[:, 1])
    return np.stack([x, y], axis=1)


def make_path(
    points: NDArray[np.float64],
    *,
    rng: np.random.Generator,
    width_px: float,
    pressure: float,
    width_variation: float = 0.15,
    pressure_variation: float = 0.2,
) -> StrokePath:
    """Build a StrokePath whose width and pressure vary smoothly along ``points``."""
    spacing = max(0.5, width_px / 8.0)
    dense = resample_polyline(np.asarray(points, dtype=np.float64), spacing)
    count = len(dense)
    radius = 0.5 * width_px * smooth_profile(rng, count, amplitude=width_variation)
    pen = pressure * smooth_profile(rng, count, amplitude=pressure_variation)
    return StrokePath(points=dense, radius_px=np.maximum(radius, 0.5), pressure=pen)


def line_paths(
    rng: np.random.Generator,
    *,
    start: tuple[float, float],
    end: tuple[float, float],
    width_px: float,
    pressure: float,
    bend: float | None = None,
) -> list[StrokePath]:
    """Draw one slightly curved line from ``start`` to ``end``.

    ``bend`` is the sideways offset of the midpoint as a fraction of the length. When it
    is None, a random value up to 0.08 is drawn.
    """
    p0 = np.asarray(start, dtype=np.float64)
    p2 = np.asarray(end, dtype=np.float64)
    direction = p2 - p0
    normal = np.array([-direction[1], direction[0]])
    offset = rng.uniform(-0.08, 0.08) if bend is None else bend
    p1 = 0.5 * (p0 + p2) + offset * normal
    t = np.linspace(0.0, 1.0, 64)[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # quadratic Bezier
    return [make_path(curve, rng=rng, width_px=width_px, pressure=pressure)]


def circle_paths(
    rng: np.random.Generator,
    *,
    centre: tuple[float, float],
    radii: tuple[float, float],
    width_px: float,
    pressure: float,
    sweep_turns: float | None = None,
) -> list[StrokePath]:
    """Draw a hand-drawn ellipse round ``centre``, wobbling and usually overlapping its start.

    ``sweep_turns`` is how many turns the pen makes; a random value between 0.75 and
    1.15 is drawn when it is None.
    """
    turns = rng.uniform(0.75, 1.15) if sweep_turns is None else sweep_turns
    start_angle = rng.uniform(0.0, 2.0 * math.pi)
    rotation = rng.uniform(0.0, math.pi)
    perimeter = math.pi * (radii[0] + radii[1])
    count = max(int(perimeter * turns / 4.0), 32)
    angle = start_angle + np.linspace(0.0, 2.0 * math.pi * turns, count)

    wobble = np.ones(count)
    for harmonic in (2, 3, 5):
        wobble += rng.uniform(0.0, 0.04) * np.cos(harmonic * angle + rng.uniform(0, 2 * math.pi))
    # A slow spiral: the pen seldom closes the loop on the line it started from.
    wobble *= np.linspace(1.0, 1.0 + rng.uniform(-0.08, 0.08), count)

    x_local = radii[0] * wobble * np.cos(angle)
    y_local = radii[1] * wobble * np.sin(angle)
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    x = centre[0] + cos_r * x_local - sin_r * y_local
    y = centre[1] + sin_r * x_local + cos_r * y_local
    return [make_path(np.stack([x, y], axis=1), rng=rng, width_px=width_px, pressure=pressure)]


def arrow_paths(
    rng: np.random.Generator,
    *,
    tail: tuple[float, float],
    tip: tuple[float, float],
    width_px: float,
    pressure: float,
) -> list[StrokePath]:
    """Draw an arrow: a shaft from ``tail`` to ``tip`` and two head strokes at the tip."""
    paths = line_paths(rng, start=tail, end=tip, width_px=width_px, pressure=pressure, bend=0.02)
    shaft = np.asarray(tip, dtype=np.float64) - np.asarray(tail, dtype=np.float64)
    length = float(np.linalg.norm(shaft))
    back = -shaft / max(length, 1e-6)
    head_length = rng.uniform(0.15, 0.3) * length
    for side in (-1.0, 1.0):
        angle = side * math.radians(rng.uniform(22.0, 40.0))
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        direction = np.array([cos_a * back[0] - sin_a * back[1], sin_a * back[0] + cos_a * back[1]])
        end = np.asarray(tip) + head_length * direction
        paths += line_paths(
            rng, start=tip, end=(float(end[0]), float(end[1])), width_px=width_px, pressure=pressure
        )
    return paths


def dot_paths(
    rng: np.random.Generator,
    *,
    centres: Sequence[tuple[float, float]],
    width_px: float,
    pressure: float,
) -> list[StrokePath]:
    """Draw a dot at each centre: a short dab whose diameter is about ``width_px``."""
    paths = []
    for cx, cy in centres:
        dot_radius = 0.5 * width_px * rng.uniform(0.8, 1.5)
        dab = rng.normal(0.0, 0.25 * dot_radius, size=(6, 2)) + np.array([cx, cy])
        radius = dot_radius * rng.uniform(0.7, 1.0, size=len(dab))
        # The pen rests on a dot, so dots get more ink than strokes drawn at speed.
        pen = pressure * rng.uniform(1.1, 1.4) * np.ones(len(dab))
        paths.append(StrokePath(points=dab, radius_px=radius, pressure=pen))
    return paths


def scribble_paths(
    rng: np.random.Generator,
    *,
    origin: tuple[float, float],
    letter_height_px: float,
    width_px: float,
    pressure: float,
    letters: int | None = None,
    angle_deg: float | None = None,
) -> list[StrokePath]:
    """Draw a cursive-looking word of looped letters starting at ``origin`` (baseline left).

    Each letter is one turn of a prolate trochoid, which makes the loops of joined
    handwriting; tall letters are taller loops.
    """
    count = int(rng.integers(3, 7)) if letters is None else letters
    pieces = []
    x_start = 0.0
    for _ in range(count):
        height = letter_height_px * (2.0 if rng.random() < 0.3 else 1.0) * rng.uniform(0.85, 1.15)
        advance = letter_height_px * rng.uniform(0.45, 0.7)
        loop = letter_height_px * rng.uniform(0.3, 0.5)
        s = np.linspace(0.0, 2.0 * math.pi, 48)
        x = x_start + advance * s / (2.0 * math.pi) - loop * np.sin(s) + loop * s / (2.0 * math.pi)
        y = -0.5 * height * (1.0 - np.cos(s))
        pieces.append(np.stack([x, y], axis=1))
        x_start = float(x[-1])
    local = np.concatenate(pieces)
    return [
        make_path(
            _place(local, rng, origin=origin, angle_deg=angle_deg),
            rng=rng,
            width_px=width_px,
            pressure=pressure,
        )
    ]


def word_paths(
    rng: np.random.Generator,
    *,
    origin: tuple[float, float],
    letter_height_px: float,
    width_px: float,
    pressure: float,
    text: str | None = None,
    angle_deg: float | None = None,
) -> list[StrokePath]:
    """Write ``text`` in jittered block capitals starting at ``origin`` (baseline left).

    Letters outside A-Z are skipped. A mark such as "EPE" is drawn when text is None.
    """
    word = str(rng.choice(PATHOLOGY_WORDS)) if text is None else text.upper()
    letter_width = 0.62 * letter_height_px
    spacing = 0.3 * letter_height_px
    slant = rng.uniform(0.0, 0.25)
    polylines = []
    x_offset = 0.0
    for character in word:
        strokes = _LETTER_STROKES.get(character)
        if strokes is None:
            x_offset += letter_width + spacing
            continue
        for stroke in strokes:
            unit = np.asarray(stroke, dtype=np.float64)
            unit = unit + rng.normal(0.0, 0.035, size=unit.shape)  # hand jitter, letter units
            x = x_offset + unit[:, 0] * letter_width + slant * (1.0 - unit[:, 1]) * letter_height_px
            y = (unit[:, 1] - 1.0) * letter_height_px  # baseline at y = 0, letters go up
            polylines.append(np.stack([x, y], axis=1))
        x_offset += letter_width * rng.uniform(0.9, 1.1) + spacing

    angle = rng.uniform(-15.0, 15.0) if angle_deg is None else angle_deg
    paths = []
    for polyline in polylines:
        placed = _place(polyline, rng, origin=origin, angle_deg=angle)
        paths.append(make_path(placed, rng=rng, width_px=width_px, pressure=pressure))
    return paths


def random_paths(
    kind: str,
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    width_px: float | None = None,
    pressure: float | None = None,
) -> tuple[list[StrokePath], dict[str, object]]:
    """Draw a random mark of one kind on a canvas of ``height`` x ``width`` pixels.

    Sizes scale with the short side of the canvas, so the same call suits a 256 px tile
    and a whole-slide image. Returns the paths and the drawn geometry as JSON-safe values.
    """
    if kind not in STROKE_KINDS:
        raise ValueError(f"unknown stroke kind {kind!r}; expected one of {', '.join(STROKE_KINDS)}")
    short = float(min(height, width))
    pen = float(np.exp(rng.uniform(math.log(0.6), math.log(1.6)))) if pressure is None else pressure
    stroke_width = short * rng.uniform(0.03, 0.12) if width_px is None else width_px
    centre = (rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height)
    geometry: dict[str, object] = {
        "kind": kind,
        "width_px": round(stroke_width, 2),
        "pressure": round(pen, 3),
    }

    if kind == "line":
        angle = rng.uniform(0.0, math.pi)
        half = 0.5 * rng.uniform(0.4, 1.4) * math.hypot(height, width)
        delta = (half * math.cos(angle), half * math.sin(angle))
        start = (centre[0] - delta[0], centre[1] - delta[1])
        end = (centre[0] + delta[0], centre[1] + delta[1])
        geometry.update(start=_rounded(start), end=_rounded(end))
        paths = line_paths(rng, start=start, end=end, width_px=stroke_width, pressure=pen)
    elif kind == "circle":
        radii = (short * rng.uniform(0.2, 0.6), short * rng.uniform(0.2, 0.6))
        geometry.update(centre=_rounded(centre), radii=_rounded(radii))
        paths = circle_paths(rng, centre=centre, radii=radii, width_px=stroke_width, pressure=pen)
    elif kind == "arrow":
        angle = rng.uniform(0.0, 2.0 * math.pi)
        length = short * rng.uniform(0.4, 0.8)
        tail = (
            centre[0] - 0.5 * length * math.cos(angle),
            centre[1] - 0.5 * length * math.sin(angle),
        )
        tip = (
            centre[0] + 0.5 * length * math.cos(angle),
            centre[1] + 0.5 * length * math.sin(angle),
        )
        geometry.update(tail=_rounded(tail), tip=_rounded(tip))
        paths = arrow_paths(rng, tail=tail, tip=tip, width_px=stroke_width, pressure=pen)
    elif kind == "dots":
        count = int(rng.integers(1, 6))
        spread = 0.3 * short
        centres = [
            (centre[0] + rng.uniform(-spread, spread), centre[1] + rng.uniform(-spread, spread))
            for _ in range(count)
        ]
        dot_width = stroke_width * rng.uniform(1.0, 2.0)
        geometry.update(centres=[_rounded(c) for c in centres], width_px=round(dot_width, 2))
        paths = dot_paths(rng, centres=centres, width_px=dot_width, pressure=pen)
    else:
        letter_height = short * rng.uniform(0.12, 0.3)
        text_width = min(stroke_width, 0.25 * letter_height)
        origin = (rng.uniform(0.05, 0.5) * width, rng.uniform(0.4, 0.9) * height)
        geometry.update(origin=_rounded(origin), letter_height_px=round(letter_height, 2))
        geometry["width_px"] = round(text_width, 2)
        if kind == "scribble":
            paths = scribble_paths(
                rng,
                origin=origin,
                letter_height_px=letter_height,
                width_px=text_width,
                pressure=pen,
            )
        else:
            text = str(rng.choice(PATHOLOGY_WORDS))
            geometry["text"] = text
            paths = word_paths(
                rng,
                origin=origin,
                letter_height_px=letter_height,
                width_px=text_width,
                pressure=pen,
                text=text,
            )
    return paths, geometry


def _place(
    local: NDArray[np.float64],
    rng: np.random.Generator,
    *,
    origin: tuple[float, float],
    angle_deg: float | None,
) -> NDArray[np.float64]:
    """Rotate local handwriting coordinates about (0, 0) and move them to ``origin``."""
    angle = math.radians(rng.uniform(-15.0, 15.0) if angle_deg is None else angle_deg)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    x = origin[0] + cos_a * local[:, 0] - sin_a * local[:, 1]
    y = origin[1] + sin_a * local[:, 0] + cos_a * local[:, 1]
    return np.stack([x, y], axis=1)


def _rounded(point: tuple[float, float]) -> list[float]:
    return [round(float(point[0]), 1), round(float(point[1]), 1)]


def _arc(
    cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float
) -> list[tuple[float, float]]:
    """Return points on an elliptical arc in letter units (x right, y down)."""
    angles = np.radians(np.linspace(start_deg, end_deg, 10))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Single-stroke block capitals in a unit box: x from 0 (left) to 1, y from 0 (top) to 1
# (baseline). Each letter is a list of polylines drawn without lifting the pen.
_LETTER_STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.55), (0.75, 0.55)]],
    "B": [
        [(0, 1), (0, 0), (0.55, 0), *_arc(0.55, 0.25, 0.3, 0.25, -90, 90), (0, 0.5)],
        [(0.6, 0.5), *_arc(0.6, 0.75, 0.35, 0.25, -90, 90), (0, 1)],
    ],
    "C": [_arc(0.55, 0.5, 0.5, 0.5, -40, -320)],
    "D": [[(0, 0), (0, 1), (0.4, 1), *_arc(0.4, 0.5, 0.6, 0.5, 90, -90), (0, 0)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.75, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.75, 0.5)]],
    "G": [[*_arc(0.55, 0.5, 0.5, 0.5, -40, -320), (1, 0.55), (0.6, 0.55)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "I": [[(0.5, 0), (0.5, 1)]],
    "J": [[(1, 0), (1, 0.7), *_arc(0.5, 0.7, 0.5, 0.3, 0, 180)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],
    "L": [[(0, 0), (0, 1), (1, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "O": [_arc(0.5, 0.5, 0.5, 0.5, 0, 360)],
    "P": [[(0, 1), (0, 0), (0.55, 0), *_arc(0.55, 0.25, 0.4, 0.25, -90, 90), (0, 0.5)]],
    "Q": [_arc(0.5, 0.5, 0.5, 0.5, 0, 360), [(0.6, 0.7), (1, 1)]],
    "R": [
        [(0, 1), (0, 0), (0.55, 0), *_arc(0.55, 0.25, 0.4, 0.25, -90, 90), (0, 0.5)],
        [(0.35, 0.5), (1, 1)],
    ],
    "S": [[*_arc(0.5, 0.25, 0.45, 0.25, -20, -270), *_arc(0.5, 0.75, 0.45, 0.25, -90, 160)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "U": [[(0, 0), (0, 0.6), *_arc(0.5, 0.6, 0.5, 0.4, 180, 0), (1, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.4), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "Z": [[(0, 0), (1, 0), (0, 1), (1, 1)]],
}
