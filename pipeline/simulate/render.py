"""Beer-Lambert rendering of pen strokes onto a clean RGB image.

Ink on a slide is one more absorbing layer in the light path, so each channel of the
scan is multiplied by the ink's transmittance:

    inked = clean * 10 ** (-density(x) * od_ink(x))

``density`` is the blurred stroke coverage times the pen pressure, with extra ink where
the stroke edge pools it. ``od_ink`` drifts between two nearby colours along the stroke.
Pixels where the density is 0 are copied from the clean image unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from pipeline.simulate.colours import COLOUR_NAMES, InkColour, resolve_colour
from pipeline.simulate.strokes import STROKE_KINDS, StrokePath, random_paths

# Blurred coverage below this is set to 0: Gaussian tails would otherwise touch every
# pixel of the canvas with densities that change no 8-bit value.
MIN_SOFT_COVERAGE = 1e-3
DEFAULT_MASK_THRESHOLD = 0.1
FAST_BLUR_MIN_SIGMA = 4.0


@dataclass(frozen=True)
class InkStyle:
    """Ink parameters of a set of strokes: colour drift, edge blur and edge darkening."""

    colour: InkColour
    od_start: tuple[float, float, float]  # OD at the start of the drawing
    od_end: tuple[float, float, float]  # OD at its end; colours in between are interpolated
    blur_px: float  # Gaussian sigma of the stroke edge
    edge_gain: float  # extra density at the stroke edge, relative to the stroke centre
    edge_width_px: float  # e-folding distance of the edge darkening into the stroke


@dataclass(frozen=True)
class SimulatedInk:
    """A clean image with simulated ink and the ground truth of where the ink is."""

    inked: NDArray[np.uint8]  # (H, W, 3)
    density: NDArray[np.float32]  # (H, W) ink density, 0 where no ink
    mask_soft: NDArray[np.float32]  # (H, W) blurred stroke coverage in [0, 1]
    mask: NDArray[np.uint8]  # (H, W) 1 where mask_soft > mask_threshold, else 0
    params: dict[str, object] = field(default_factory=dict)  # JSON-safe drawn parameters


def sample_style(
    rng: np.random.Generator,
    colour: str | InkColour,
    *,
    width_px: float,
    blur_px: float | None = None,
    edge_gain: float | None = None,
    colour_variation: float = 0.1,
) -> InkStyle:
    """Draw an ink style for strokes about ``width_px`` wide.

    ``colour_variation`` is the standard deviation of the log-ratio between the
    calibrated OD and the OD at either end of the drawing.
    """
    ink = resolve_colour(colour)
    base = ink.od_array().astype(np.float64)
    od_start = base * np.exp(rng.normal(0.0, colour_variation, size=3))
    od_end = base * np.exp(rng.normal(0.0, colour_variation, size=3))
    blur = max(0.7, width_px * rng.uniform(0.05, 0.3)) if blur_px is None else max(blur_px, 0.3)
    gain = rng.uniform(0.15, 0.6) if edge_gain is None else edge_gain
    if gain < 0:
        raise ValueError(f"edge_gain must be >= 0, got {gain}")
    return InkStyle(
        colour=ink,
        od_start=_triple(od_start),
        od_end=_triple(od_end),
        blur_px=float(blur),
        edge_gain=float(gain),
        edge_width_px=float(max(1.0, width_px * rng.uniform(0.05, 0.15))),
    )


def render_paths(
    paths: Sequence[StrokePath],
    *,
    height: int,
    width: int,
    style: InkStyle,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Rasterise paths into (mask_soft, density, od) arrays of a height x width canvas.

    ``mask_soft`` and ``density`` are (H, W); ``od`` is (H, W, 3) and is 0 wherever the
    density is 0. Density is positive exactly where mask_soft is positive.
    """
    mask_soft = np.zeros((height, width), np.float32)
    density = np.zeros((height, width), np.float32)
    od = np.zeros((height, width, 3), np.float32)
    if not paths:
        return mask_soft, density, od

    # Render inside the paths' bounding box, widened by the blur reach, so a huge canvas
    # with a small mark costs what the mark costs. The box may extend past the canvas:
    # strokes that leave it must still blur back in as if the canvas went on.
    reach = math.ceil(4.0 * style.blur_px) + 2
    all_points = np.concatenate([path.points for path in paths])
    max_radius = max(float(path.radius_px.max()) for path in paths)
    x0 = max(math.floor(all_points[:, 0].min() - max_radius) - reach, -reach)
    y0 = max(math.floor(all_points[:, 1].min() - max_radius) - reach, -reach)
    x1 = min(math.ceil(all_points[:, 0].max() + max_radius) + reach, width + reach)
    y1 = min(math.ceil(all_points[:, 1].max() + max_radius) + reach, height + reach)
    if x1 <= max(x0, 0) or y1 <= max(y0, 0) or x0 >= width or y0 >= height:
        return mask_soft, density, od

    coverage, pressure_sum, position_sum = _stamp_paths(
        paths, origin=(x0, y0), size=(y1 - y0, x1 - x0)
    )
    local_soft = _blur(coverage, style.blur_px)
    local_soft[local_soft < MIN_SOFT_COVERAGE] = 0.0
    inside = local_soft > 0

    # Pressure and position along the drawing are averaged with the same blur as the
    # coverage (normalised convolution), so they are defined wherever the soft mask is.
    safe_soft = np.where(inside, local_soft, 1.0)
    pressure = np.where(inside, _blur(pressure_sum, style.blur_px) / safe_soft, 0.0)
    position = np.clip(np.where(inside, _blur(position_sum, style.blur_px) / safe_soft, 0.0), 0, 1)

    # Marker ink pools at the rim of a stroke as it dries, so the edge is darker.
    distance = cv2.distanceTransform(coverage.astype(np.uint8), cv2.DIST_L2, 3)
    rim = coverage * np.exp(-distance / style.edge_width_px)
    rim_soft = np.clip(_blur(rim.astype(np.float32), style.blur_px), 0.0, None)
    local_density = np.where(
        inside, np.maximum(pressure, 1e-3) * (local_soft + style.edge_gain * rim_soft), 0.0
    ).astype(np.float32)

    od_start = np.asarray(style.od_start, np.float32)
    od_end = np.asarray(style.od_end, np.float32)
    local_od = (1.0 - position)[..., None] * od_start + position[..., None] * od_end  # (h, w, 3)
    local_od[~inside] = 0.0

    # Copy the part of the local box that lies on the canvas.
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, width), min(y1, height)
    box = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    mask_soft[cy0:cy1, cx0:cx1] = local_soft[box]
    density[cy0:cy1, cx0:cx1] = local_density[box]
    od[cy0:cy1, cx0:cx1] = local_od[box]
    return mask_soft, density, od


def apply_ink(
    clean: NDArray[np.uint8],
    density: NDArray[np.float32],
    od: NDArray[np.float32],
) -> NDArray[np.uint8]:
    """Return ``clean * 10 ** (-density * od)`` rounded to uint8; density 0 copies clean."""
    inked = clean.copy()
    inked_pixels = density > 0
    if inked_pixels.any():
        transmittance = np.power(10.0, -density[inked_pixels][:, None] * od[inked_pixels])  # (P, 3)
        values = clean[inked_pixels].astype(np.float32) * transmittance
        inked[inked_pixels] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return inked


def simulate_ink(
    clean: NDArray[np.uint8],
    *,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    colour: str | InkColour | None = None,
    kind: str | None = None,
    paths: Sequence[StrokePath] | None = None,
    width_px: float | None = None,
    pressure: float | None = None,
    blur_px: float | None = None,
    edge_gain: float | None = None,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
) -> SimulatedInk:
    """Draw simulated pen ink on an (H, W, 3) uint8 image.

    Give exactly one of ``seed`` and ``rng``; equal seeds give identical results.
    ``colour`` (blue, green, black, red) and ``kind`` (line, circle, arrow, dots,
    scribble, word) are drawn at random when None. ``paths`` replaces the random
    geometry of ``kind``; the other keyword arguments fix what is otherwise drawn.
    """
    if (seed is None) == (rng is None):
        raise ValueError("pass exactly one of seed= or rng= so that the ink is reproducible")
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"clean must be an (H, W, 3) uint8 array, got {clean.dtype} {clean.shape}")
    if not 0.0 <= mask_threshold < 1.0:
        raise ValueError(f"mask_threshold must be in [0, 1), got {mask_threshold}")
    generator = np.random.default_rng(seed) if rng is None else rng
    height, width = clean.shape[:2]

    colour_name = str(generator.choice(COLOUR_NAMES)) if colour is None else colour
    geometry: dict[str, object]
    if paths is None:
        kind_name = str(generator.choice(STROKE_KINDS)) if kind is None else kind
        drawn, geometry = random_paths(
            kind_name, generator, height=height, width=width, width_px=width_px, pressure=pressure
        )
    else:
        drawn = list(paths)
        geometry = {"kind": kind or "custom"}
    stroke_width = (
        2.0 * float(np.median(np.concatenate([p.radius_px for p in drawn]))) if drawn else 1.0
    )

    style = sample_style(
        generator, colour_name, width_px=stroke_width, blur_px=blur_px, edge_gain=edge_gain
    )
    mask_soft, density, od = render_paths(drawn, height=height, width=width, style=style)
    inked = apply_ink(clean, density, od)
    mask = (mask_soft > mask_threshold).astype(np.uint8)

    params: dict[str, object] = {
        "seed": seed,
        "colour": style.colour.name,
        "od_rgb_calibrated": list(style.colour.od_rgb),
        "od_start": list(style.od_start),
        "od_end": list(style.od_end),
        "blur_px": round(style.blur_px, 3),
        "edge_gain": round(style.edge_gain, 3),
        "edge_width_px": round(style.edge_width_px, 3),
        "mask_threshold": mask_threshold,
        "geometry": geometry,
        "paths": [path.to_json() for path in drawn],
        "inked_fraction": round(float(mask.mean()), 5),
    }
    return SimulatedInk(inked=inked, density=density, mask_soft=mask_soft, mask=mask, params=params)


def _stamp_paths(
    paths: Sequence[StrokePath],
    *,
    origin: tuple[int, int],
    size: tuple[int, int],
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Stamp a disc at every path point; return coverage, pressure and position maps.

    Position is the fraction of the whole drawing's length at which the pen was there,
    so the colour drifts along the strokes in the order they were drawn.
    """
    coverage = np.zeros(size, np.uint8)
    pressure_map = np.zeros(size, np.float32)
    position_map = np.zeros(size, np.float32)
    lengths = [max(_polyline_length(path.points), 1e-6) for path in paths]
    total = float(sum(lengths))
    travelled = 0.0
    shift_bits = 4  # sub-pixel precision of cv2 drawing: coordinates in 1/16 px
    scale = 1 << shift_bits
    for path, length in zip(paths, lengths, strict=True):
        steps = np.concatenate(
            [[0.0], np.cumsum(np.linalg.norm(np.diff(path.points, axis=0), axis=1))]
        )
        for point, radius, pen, step in zip(
            path.points, path.radius_px, path.pressure, steps, strict=True
        ):
            centre = (
                round((point[0] - origin[0]) * scale),
                round((point[1] - origin[1]) * scale),
            )
            radius_fixed = max(round(radius * scale), 1)
            fraction = (travelled + step) / total
            cv2.circle(coverage, centre, radius_fixed, 1, -1, cv2.LINE_8, shift_bits)
            cv2.circle(pressure_map, centre, radius_fixed, float(pen), -1, cv2.LINE_8, shift_bits)
            cv2.circle(
                position_map, centre, radius_fixed, float(fraction), -1, cv2.LINE_8, shift_bits
            )
        travelled += length
    covered = coverage.astype(np.float32)
    return covered, pressure_map * covered, position_map * covered


def _polyline_length(points: NDArray[np.float64]) -> float:
    if len(points) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def _blur(image: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    """Gaussian-blur with a zero border; wide blurs run on a reduced copy.

    A wide kernel costs O(sigma) per pixel. For sigma > 4 the image is area-reduced by
    f = sigma // 2, blurred with the remaining sigma, and linearly enlarged back, which
    stays within 0.025 of the exact blur of a 0/1 image. The zero border is right because
    the local box already extends past every stroke by the blur reach.
    """
    if sigma <= FAST_BLUR_MIN_SIGMA:
        exact = cv2.GaussianBlur(
            image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT
        )
        return np.asarray(exact, dtype=np.float32)
    factor = int(sigma // 2)
    height, width = image.shape
    padded_height = math.ceil(height / factor) * factor
    padded_width = math.ceil(width / factor) * factor
    padded = np.zeros((padded_height, padded_width), np.float32)
    padded[:height, :width] = image
    small = cv2.resize(
        padded, (padded_width // factor, padded_height // factor), interpolation=cv2.INTER_AREA
    )
    # Area reduction already blurs by a box of `factor` px (variance factor^2 / 12).
    small_sigma = math.sqrt(max(sigma**2 - factor**2 / 12.0, 0.25)) / factor
    blurred = cv2.GaussianBlur(
        small, (0, 0), sigmaX=small_sigma, sigmaY=small_sigma, borderType=cv2.BORDER_CONSTANT
    )
    enlarged = cv2.resize(blurred, (padded_width, padded_height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(enlarged[:height, :width], dtype=np.float32)


def _triple(values: NDArray[np.float64]) -> tuple[float, float, float]:
    return (round(float(values[0]), 4), round(float(values[1]), 4), round(float(values[2]), 4))
