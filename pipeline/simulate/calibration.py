"""Measurement of ink optical densities on real scans.

Run ``python -m pipeline.simulate.calibration --data DATA_DIR`` to print, as JSON, the
fits that ``pipeline.simulate.colours`` stores as constants.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

# Added red-channel OD above which a pixel of a blue-ink pair counts as inked. Blue ink
# absorbs red most, and 0.1 OD (a 21% drop in red) is well above JPEG noise.
INKED_MIN_ADDED_OD_RED = 0.1


def optical_density(rgb: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Return -log10(I / 255) per channel; 0 is clipped to 1 so that OD stays finite."""
    intensity = np.clip(rgb.astype(np.float64), 1.0, 255.0)
    return -np.log10(intensity / 255.0)


@dataclass(frozen=True)
class PairedInkFit:
    """Fit of one ink OD vector to registered clean/inked pairs.

    ``od_rgb`` is the per-channel median of ``OD(inked) - OD(clean)`` over inked pixels.
    The residuals compare two Beer-Lambert models with that colour: one density per pixel
    (the least-squares projection of the added OD onto ``od_rgb``) and one constant density
    of 1. RMS values are in OD units, RMSE values in 8-bit intensity levels.
    """

    od_rgb: tuple[float, float, float]
    per_pair_median_od: list[tuple[float, float, float]]
    inked_pixel_fraction: float
    inked_pixel_count: int
    density_percentiles: dict[str, float]
    residual_od_rms_per_pixel_density: float
    residual_od_rms_constant_density: float
    rgb_rmse_per_pixel_density: float
    rgb_rmse_constant_density: float


def fit_paired_ink(
    pairs: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]],
) -> PairedInkFit:
    """Fit the ink OD vector on (clean, inked) pairs of equal-sized RGB arrays."""
    if not pairs:
        raise ValueError("no clean/inked pairs given; pass at least one registered pair")

    added_per_pair = []
    clean_pixels = []
    inked_pixels = []
    per_pair_median = []
    total_pixels = 0
    for clean, inked in pairs:
        if clean.shape != inked.shape:
            raise ValueError(f"pair shapes differ: clean {clean.shape}, inked {inked.shape}")
        added = optical_density(inked) - optical_density(clean)  # (H, W, 3)
        selected = added[..., 0] > INKED_MIN_ADDED_OD_RED
        total_pixels += selected.size
        added_per_pair.append(added[selected])
        clean_pixels.append(clean[selected].astype(np.float64))
        inked_pixels.append(inked[selected].astype(np.float64))
        per_pair_median.append(_rounded_triple(np.median(added[selected], axis=0)))

    added_od = np.concatenate(added_per_pair)  # (P, 3)
    if added_od.shape[0] == 0:
        raise ValueError(
            "no inked pixels found in the pairs; check that the inked half is on the right"
        )
    clean_rgb = np.concatenate(clean_pixels)
    inked_rgb = np.concatenate(inked_pixels)
    od_rgb = np.median(added_od, axis=0)

    # Least-squares density of each pixel along the fitted colour direction.
    density = np.clip(added_od @ od_rgb / float(od_rgb @ od_rgb), 0.0, None)  # (P,)
    residual_fitted = added_od - density[:, None] * od_rgb
    residual_constant = added_od - od_rgb
    predicted_fitted = clean_rgb * 10.0 ** (-density[:, None] * od_rgb)
    predicted_constant = clean_rgb * 10.0 ** (-od_rgb)

    return PairedInkFit(
        od_rgb=_rounded_triple(od_rgb),
        per_pair_median_od=per_pair_median,
        inked_pixel_fraction=round(added_od.shape[0] / total_pixels, 4),
        inked_pixel_count=int(added_od.shape[0]),
        density_percentiles={
            f"p{q}": round(float(np.percentile(density, q)), 3) for q in (10, 25, 50, 75, 90)
        },
        residual_od_rms_per_pixel_density=_rms(residual_fitted),
        residual_od_rms_constant_density=_rms(residual_constant),
        rgb_rmse_per_pixel_density=_rms(np.clip(predicted_fitted, 0, 255) - inked_rgb),
        rgb_rmse_constant_density=_rms(np.clip(predicted_constant, 0, 255) - inked_rgb),
    )


@dataclass(frozen=True)
class PenInkFit:
    """OD of pen strokes on glass relative to the glass next to them."""

    od_rgb: tuple[float, float, float]
    od_p10: tuple[float, float, float]
    od_p90: tuple[float, float, float]
    glass_rgb: tuple[float, float, float]
    stroke_pixel_count: int


def estimate_pen_od(
    image: NDArray[np.uint8],
    stroke_mask: NDArray[np.bool_],
    *,
    ring_px: int = 20,
) -> PenInkFit:
    """Estimate a pen's OD from an RGB image and a binary mask of its strokes.

    Glass is the unmasked, unsaturated, bright pixels within ``ring_px`` of a stroke.
    Stroke pixels within 15 px of tissue are left out, so the estimate is the pen on
    glass alone. The mask is eroded by 2 px because hand-drawn masks overshoot edges.
    """
    if image.shape[:2] != stroke_mask.shape:
        raise ValueError(
            f"mask shape {stroke_mask.shape} differs from image shape {image.shape[:2]}"
        )
    mask = stroke_mask.astype(np.uint8)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    near_stroke = cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0
    tissue = ((hsv[..., 1] > 25) | (hsv[..., 2] < 200)) & ~near_stroke
    near_tissue = cv2.dilate(tissue.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    stroke_core = (cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0) & ~near_tissue
    ring_size = 2 * ring_px + 1
    ring = (
        (cv2.dilate(mask, np.ones((ring_size, ring_size), np.uint8)) > 0) & ~near_stroke & ~tissue
    )
    if not ring.any() or not stroke_core.any():
        raise ValueError("no stroke pixels on glass with glass next to them; check the mask")

    glass = np.median(image[ring], axis=0)  # (3,)
    added = optical_density(image[stroke_core]) - optical_density(glass[None, :])  # (P, 3)
    return PenInkFit(
        od_rgb=_rounded_triple(np.median(added, axis=0)),
        od_p10=_rounded_triple(np.percentile(added, 10, axis=0)),
        od_p90=_rounded_triple(np.percentile(added, 90, axis=0)),
        glass_rgb=_rounded_triple(glass),
        stroke_pixel_count=int(stroke_core.sum()),
    )


def calibrate_from_data(data_dir: Path) -> dict[str, object]:
    """Run every calibration on the data folder and return the fits as a JSON-safe dict."""
    from pipeline.evaluation.real_pairs import load_real_pairs

    pairs = load_real_pairs(data_dir / "paired-blue-ink", "calibration")
    blue = fit_paired_ink([(pair.clean, pair.inked) for pair in pairs])
    result: dict[str, object] = {
        "blue": {"pairs": [pair.name for pair in pairs], **asdict(blue)},
    }
    thumbnails = data_dir / "ink" / "thumbnails-with-masks"
    for colour in ("green", "red", "black"):
        image = np.asarray(Image.open(thumbnails / f"pen-{colour}.png").convert("RGB"))
        mask = np.asarray(Image.open(thumbnails / f"pen-{colour}-mask.png").convert("L")) > 0
        fit = estimate_pen_od(image, mask)
        result[colour] = {"image": f"pen-{colour}.png", **asdict(fit)}
    return result


def _rounded_triple(values: NDArray[np.float64]) -> tuple[float, float, float]:
    return (round(float(values[0]), 3), round(float(values[1]), 3), round(float(values[2]), 3))


def _rms(values: NDArray[np.float64]) -> float:
    return round(float(np.sqrt(np.mean(np.square(values)))), 4)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the calibration of every ink colour as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the real test data folder")
    args = parser.parse_args(argv)
    json.dump(calibrate_from_data(args.data), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
