"""Optical density (Beer-Lambert) conversions, glass colour and H&E stain vectors."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

# Haematoxylin and eosin OD directions (rows, unit length) from Ruifrok & Johnston,
# "Quantification of histochemical staining by color deconvolution", Anal Quant
# Cytol Histol 23(4), 2001. Used when a slide has too little tissue to estimate its own.
HE_REFERENCE = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]], dtype=np.float32)
HE_REFERENCE /= np.linalg.norm(HE_REFERENCE, axis=1, keepdims=True)

# Cosine between an estimated stain vector and its reference below which the estimate
# is rejected, about 37 degrees. Real eosin absorbs more blue than the reference and
# sat up to about 26 degrees away from it on the test slides.
MIN_STAIN_AGREEMENT = 0.8

# Glass is assumed white when an image has too few bright, grey pixels to measure it.
WHITE = np.array([255.0, 255.0, 255.0], dtype=np.float32)

# Transmitted intensities are floored at this value before taking logarithms.
MIN_INTENSITY = 1.0


def estimate_glass(rgb: np.ndarray, *, min_pixels: int = 50) -> np.ndarray:
    """Estimate the colour of empty glass from an RGB image (a thumbnail or screening level).

    Takes bright, low-saturation pixels and returns the per-channel median of the
    brightest quarter of them as a (3,) float32 array. Falls back to white, with a
    warning, when fewer than ``min_pixels`` such pixels exist.
    """
    pixels = rgb.reshape(-1, 3).astype(np.float32)  # (N, 3)
    value = pixels.max(axis=1)
    saturation = (value - pixels.min(axis=1)) / np.maximum(value, 1.0)
    candidates = pixels[(value >= 180.0) & (saturation <= 0.12)]
    if len(candidates) < max(min_pixels, int(0.002 * len(pixels))):
        logger.warning("too few glass pixels (%d of %d) to estimate the glass colour; "
                       "assuming white", len(candidates), len(pixels))
        return WHITE.copy()
    brightness = candidates.mean(axis=1)
    brightest = candidates[brightness >= np.percentile(brightness, 75)]
    return np.median(brightest, axis=0).astype(np.float32)


def optical_density(rgb: np.ndarray, glass: np.ndarray) -> np.ndarray:
    """Return OD = -log10(I / I0) per channel as float32, with I0 the glass colour.

    Pixels brighter than glass get small negative values; callers clip where needed.
    """
    intensity = np.maximum(rgb.astype(np.float32), MIN_INTENSITY)
    return -np.log10(intensity / np.maximum(glass.astype(np.float32), MIN_INTENSITY))


def estimate_stain_vectors(od: np.ndarray, *, min_pixels: int = 500,
                           min_density: float = 0.15, percentile: float = 1.0) -> np.ndarray:
    """Estimate haematoxylin and eosin OD vectors (2, 3) from tissue pixels (N, 3).

    Follows Macenko et al., "A method for normalizing histology slides for
    quantitative analysis", ISBI 2009: project OD onto the plane of the two main
    eigenvectors and take the robust extreme angles. Returns HE_REFERENCE when the
    pixels are too few or the estimate is not physically plausible.
    """
    od = od.reshape(-1, 3)
    tissue = od[(od > min_density).all(axis=1)]
    if len(tissue) < min_pixels:
        return HE_REFERENCE.copy()
    _, eigenvectors = np.linalg.eigh(np.cov(tissue, rowvar=False))
    plane = eigenvectors[:, 1:3]  # (3, 2): the two largest eigenvectors
    projected = tissue @ plane  # (N, 2)
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [percentile, 100.0 - percentile])
    first = plane @ np.array([np.cos(low), np.sin(low)])
    second = plane @ np.array([np.cos(high), np.sin(high)])
    vectors = np.stack([first, second]).astype(np.float32)
    vectors *= np.sign(vectors.sum(axis=1, keepdims=True))
    if (vectors < -0.05).any():
        return HE_REFERENCE.copy()
    vectors = np.clip(vectors, 0.0, None)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Haematoxylin absorbs red more than eosin does; order the rows as (H, E).
    if vectors[0, 0] < vectors[1, 0]:
        vectors = vectors[::-1].copy()
    # Dust, folds or ink left in the sample can pull an extreme angle far from any
    # stain; such a vector is replaced by its reference.
    agreement = (vectors * HE_REFERENCE).sum(axis=1)  # cosine with each reference
    for row in np.flatnonzero(agreement < MIN_STAIN_AGREEMENT):
        logger.info("estimated stain vector %s is %.0f degrees from the reference; using the "
                    "reference", np.round(vectors[row], 3).tolist(),
                    np.degrees(np.arccos(np.clip(agreement[row], -1.0, 1.0))))
        vectors[row] = HE_REFERENCE[row]
    return vectors


# The ink vector must make at least this sine with the H&E plane for three-stain
# unmixing, because closer to the plane unmixing cannot tell ink from stain.
MIN_PLANE_SINE = 0.2


def plane_sine(ink_vector: np.ndarray, stain_vectors: np.ndarray) -> float:
    """Return |sin| of the angle between an ink OD vector and the H&E plane."""
    normal = np.cross(stain_vectors[0], stain_vectors[1])
    normal = normal / max(float(np.linalg.norm(normal)), 1e-6)
    return abs(float(normal @ ink_vector))


def unmix_ink(od: np.ndarray, ink_vector: np.ndarray,
              stain_vectors: np.ndarray) -> np.ndarray | None:
    """Return the ink amount (H, W) by solving OD = c_h * h + c_e * e + c_k * k per pixel.

    Returns None when the ink vector lies too close to the H&E plane (see MIN_PLANE_SINE).
    """
    if plane_sine(ink_vector, stain_vectors) < MIN_PLANE_SINE:
        return None
    basis = np.stack([stain_vectors[0], stain_vectors[1], ink_vector]).astype(np.float32)  # (3, 3)
    amounts = od @ np.linalg.inv(basis)  # (H, W, 3): columns c_h, c_e, c_k
    return np.ascontiguousarray(amounts[..., 2])
