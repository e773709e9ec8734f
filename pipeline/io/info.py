"""Slide metadata record shared by every reader."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Compressions whose decoded pixels differ from what was scanned. Output for such
# sources is re-encoded as JPEG; everything else is written losslessly.
LOSSY_COMPRESSIONS = frozenset({"jpeg", "jpeg2000", "jpegxr", "jpegxl", "webp"})


@dataclass(frozen=True)
class SlideInfo:
    """Geometry, resolution and encoding of a slide, in level-0 ("baseline") pixels.

    ``width`` and ``height`` are after the TIFF Orientation tag has been applied.
    ``mpp_x``/``mpp_y`` are micrometres per level-0 pixel, None when the file does
    not record a resolution. ``level_downsamples`` lists the native pyramid levels
    stored in the file (1.0 first).
    """

    path: str
    format: str
    reader: str
    width: int
    height: int
    level_count: int
    level_downsamples: list[float]
    tile_width: int
    tile_height: int
    mpp_x: float | None
    mpp_y: float | None
    magnification: float | None
    associated_images: list[str] = field(default_factory=list)
    compression: str = "unknown"
    bands: int = 3

    @property
    def is_lossy(self) -> bool:
        """Whether the level-0 pixels are stored with a lossy compression."""
        return self.compression in LOSSY_COMPRESSIONS

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict."""
        return asdict(self)
