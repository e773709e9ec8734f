"""Run options: every tunable of a pipeline run, with physical units in the names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from pipeline.inkrules import DEFAULT_RULES, ColourRules

RestoreMethod = Literal["od", "cyclegan", "cyclegan-dense-sparse", "paired"]
RESTORE_METHODS: tuple[str, ...] = get_args(RestoreMethod)
RESTORE_METHOD_LABELS: dict[str, str] = {
    "od": "Optical density unmixing",
    "cyclegan": "CycleGAN",
    "cyclegan-dense-sparse": "CycleGAN dense/sparse",
    "paired": "Paired U-Net",
}


@dataclass(frozen=True)
class RunOptions:
    """Settings of one ``run_pipeline`` call.

    Lengths ending in ``_um`` are micrometres and areas ending in ``_um2`` square
    micrometres. They are converted to pixels with the slide's resolution, or with
    ``assumed_mpp`` when the file records none.
    """

    # Screening: the low-resolution pass that finds candidate regions.
    screen_mpp: float = 8.0
    screen_min_side_px: int = 512
    assumed_mpp: float = 0.5
    min_ink_area_um2: float = 10_000.0
    min_ink_area_fraction: float = 0.005
    candidate_margin_um: float = 50.0

    # Full-resolution ink mask.
    smoothing_um: float = 2.0
    opening_um: float = 4.0
    closing_um: float = 8.0
    max_hole_area_um2: float = 2_000.0
    min_tile_ink_fraction: float = 0.001
    min_ink_concentration: float = 0.25
    extension_um: float = 30.0

    # Tile classifiers (pipeline.models): window around each tile and decision thresholds.
    classify_window_px: int = 512
    classify_batch_size: int = 16
    ink_threshold: float = 0.5
    foreground_threshold: float = 0.5
    require_classifier: bool = True

    # Restoration and blending.
    foreground_method: Literal["optical-density"] = "optical-density"
    # How ink over tissue is removed: optical-density unmixing, a CycleGAN generator
    # (one set of weights, or dense/sparse chosen per region by the detector), or the
    # paired U-Net. Ink on glass is always filled with the glass colour.
    restore_method: RestoreMethod = "od"
    # The ink region is the ink mask grown by dilation_um (background_dilation_um for ink
    # on glass). Restored pixels are blended in over its outer feather_um, so nothing
    # outside the region changes.
    dilation_um: float = 4.0
    background_dilation_um: float = 15.0
    feather_um: float = 3.0
    ink_smoothing_um: float = 1.0
    min_transmittance: float = 0.1

    # Output.
    tile_size: int = 512
    jpeg_quality: int = 90
    lossless_compression: Literal["deflate", "lzw", "zstd"] = "deflate"
    copy_unchanged_tiles: bool = True

    colour_rules: ColourRules = field(default_factory=lambda: DEFAULT_RULES)

    def __post_init__(self) -> None:
        if self.tile_size % 16 or self.tile_size < 64:
            raise ValueError(f"tile_size must be a multiple of 16 and at least 64, "
                             f"got {self.tile_size}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        for name in ("screen_mpp", "assumed_mpp"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.restore_method not in RESTORE_METHODS:
            raise ValueError(f"restore_method must be one of {', '.join(RESTORE_METHODS)}, "
                             f"got {self.restore_method!r}")
        for name in ("ink_threshold", "foreground_threshold", "min_transmittance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-safe dict."""
        return asdict(self)
