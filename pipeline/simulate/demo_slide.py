"""A demonstration slide: a real clean slide with simulated pen marks, as a pyramidal BigTIFF.

The source slide is read whole at level 0, which suits small slides such as the
2220 x 2967 CMU-1 region. Four marks are drawn on it with the ink simulator. The result
is written as a tiled, JPEG-compressed BigTIFF pyramid that OpenSlide, tifffile and
large_image open, with the ink ground truth next to it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np
import tifffile
from numpy.typing import NDArray
from PIL import Image

from pipeline.progress import ProgressCallback, ProgressEvent
from pipeline.simulate.render import SimulatedInk, simulate_ink
from pipeline.simulate.strokes import StrokePath, circle_paths, dot_paths, line_paths, word_paths

logger = logging.getLogger(__name__)

TILE_SIZE_PX = 256
JPEG_QUALITY = 90
DEMO_TEXT = "EPE"


def read_slide_level0(path: Path) -> tuple[NDArray[np.uint8], tuple[float | None, float | None]]:
    """Read a whole slide at level 0 as (H, W, 3) uint8 RGB, with its (mpp_x, mpp_y).

    Transparent pixels (outside the scanned area) become white glass.
    """
    import openslide

    try:
        slide = openslide.OpenSlide(str(path))
    except openslide.OpenSlideError as error:
        raise ValueError(
            f"cannot open {path} as a slide: {error}; pass an SVS or tiled TIFF"
        ) from error
    with slide:
        width, height = slide.dimensions
        rgba = np.asarray(slide.read_region((0, 0), 0, (width, height)))  # (H, W, 4)
        mpp_x = _float_or_none(slide.properties.get(openslide.PROPERTY_NAME_MPP_X))
        mpp_y = _float_or_none(slide.properties.get(openslide.PROPERTY_NAME_MPP_Y))
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8), (mpp_x, mpp_y)


def demo_marks(
    width: int, height: int, rng: np.random.Generator
) -> list[tuple[str, str, list[StrokePath]]]:
    """Lay out the four demonstration marks as (colour, kind, paths), in level-0 pixels.

    Positions are fractions of the slide size, chosen for the CMU-1 region. The circle
    lies over the tissue and the line runs from the glass at the top right into the
    tissue at the bottom right. The dots are on tissue and the word on the glass at the
    left. Real marker strokes are 0.5 to 1 mm wide, wider than this whole 1.1 x 1.5 mm
    region, so the widths here are scaled down to fit four marks.
    """
    short = min(width, height)
    circle = circle_paths(
        rng,
        centre=(0.56 * width, 0.5 * height),
        radii=(0.17 * short, 0.14 * short),
        width_px=0.032 * short,
        pressure=1.2,
        sweep_turns=1.08,
    )
    line = line_paths(
        rng,
        start=(0.94 * width, 0.06 * height),
        end=(0.77 * width, 0.98 * height),
        width_px=0.04 * short,
        pressure=1.0,
    )
    dots = dot_paths(
        rng,
        centres=[
            (0.36 * width, 0.74 * height),
            (0.47 * width, 0.78 * height),
            (0.4 * width, 0.86 * height),
        ],
        width_px=0.045 * short,
        pressure=1.1,
    )
    word = word_paths(
        rng,
        origin=(0.08 * width, 0.27 * height),
        letter_height_px=0.1 * short,
        width_px=0.018 * short,
        pressure=1.1,
        text=DEMO_TEXT,
        angle_deg=-8.0,
    )
    return [
        ("green", "circle", circle),
        ("blue", "line", line),
        ("black", "dots", dots),
        ("red", "word", word),
    ]


def draw_demo_ink(
    clean: NDArray[np.uint8], *, seed: int
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], list[dict[str, object]]]:
    """Draw the demonstration marks; return the inked image, the union mask and parameters."""
    height, width = clean.shape[:2]
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(5)]
    inked = clean
    mask = np.zeros((height, width), np.uint8)
    params = []
    for (colour, kind, paths), stream in zip(
        demo_marks(width, height, streams[0]), streams[1:], strict=True
    ):
        result: SimulatedInk = simulate_ink(
            inked, rng=stream, colour=colour, kind=kind, paths=paths
        )
        inked = result.inked
        mask |= result.mask
        params.append(result.params)
    return inked, mask, params


def build_pyramid(
    image: NDArray[np.uint8], *, tile_px: int = TILE_SIZE_PX
) -> list[NDArray[np.uint8]]:
    """Return level 0 and successive 2x reductions until a level fits in one tile."""
    levels = [image]
    while max(levels[-1].shape[:2]) > tile_px:
        previous = levels[-1]
        # Halve with rounding up, as libvips and OpenSlide's writers do, so no edge
        # column is lost; area interpolation averages each 2 x 2 block.
        size = (math.ceil(previous.shape[1] / 2), math.ceil(previous.shape[0] / 2))
        reduced = cv2.resize(previous, size, interpolation=cv2.INTER_AREA)
        levels.append(np.asarray(reduced, dtype=np.uint8))
    return levels


def write_pyramid_tiff(
    path: Path,
    image: NDArray[np.uint8],
    *,
    mpp: tuple[float | None, float | None],
    description: str,
) -> None:
    """Write a tiled JPEG BigTIFF pyramid, every level tiled, reduced levels flagged.

    The file is written under a temporary name and renamed, so a reader never sees a
    partial file.
    """
    temporary = path.with_name(f".{path.name}.partial")
    levels = build_pyramid(image)
    with tifffile.TiffWriter(temporary, bigtiff=True) as writer:
        for index, level in enumerate(levels):
            downsample = image.shape[1] / level.shape[1]
            resolution = None
            if mpp[0] and mpp[1]:
                # TIFF resolution is pixels per unit; 1 cm = 1e4 um.
                resolution = (1e4 / (mpp[0] * downsample), 1e4 / (mpp[1] * downsample))
            writer.write(
                level,
                tile=(TILE_SIZE_PX, TILE_SIZE_PX),
                photometric=tifffile.PHOTOMETRIC.RGB,
                compression=tifffile.COMPRESSION.JPEG,
                compressionargs={"level": JPEG_QUALITY},
                subfiletype=0 if index == 0 else tifffile.FILETYPE.REDUCEDIMAGE,
                description=description if index == 0 else None,
                metadata=None,
                software="InkWeb ink simulator",
                resolution=resolution,
                resolutionunit=tifffile.RESUNIT.CENTIMETER if resolution else None,
            )
    os.replace(temporary, path)


def write_demo_slide(
    source: Path,
    output: Path,
    *,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> dict[str, object]:
    """Write the inked demonstration slide, its ink mask PNG and a JSON of parameters.

    Returns the JSON-safe record that is also written to ``<output stem>.json``.
    """

    def report(stage: str, done: int, total: int, message: str) -> None:
        if progress is not None:
            progress(ProgressEvent(stage=stage, done=done, total=total, message=message))

    logger.info("demo slide: reading %s", source)
    report("read", 0, 3, f"reading {source.name}")
    clean, mpp = read_slide_level0(source)

    report("simulate", 1, 3, "drawing simulated ink")
    inked, mask, params = draw_demo_ink(clean, seed=seed)

    report("write", 2, 3, f"writing {output.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    description = f"InkWeb simulated pen marks on {source.name}; simulated=true; seed={seed}"
    write_pyramid_tiff(output, inked, mpp=mpp, description=description)
    mask_path = output.with_name(f"{output.stem}-mask.png")
    Image.fromarray(mask * 255).save(mask_path, optimize=True)

    record: dict[str, object] = {
        "source": source.name,
        "output": output.name,
        "mask": mask_path.name,
        "seed": seed,
        "width": int(clean.shape[1]),
        "height": int(clean.shape[0]),
        "mpp": list(mpp),
        "inked_fraction": round(float(mask.mean()), 5),
        "marks": params,
    }
    output.with_name(f"{output.stem}.json").write_text(json.dumps(record, indent=1))
    report("done", 3, 3, f"wrote {output}")
    logger.info(
        "demo slide: wrote %s (%d x %d, %.2f%% inked)",
        output,
        clean.shape[1],
        clean.shape[0],
        100 * mask.mean(),
    )
    return record


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
