"""Checksums and the JSON run report written beside the outputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pipeline.geometry import Box, merge_boxes


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def merged_regions(found: list[tuple[Box, str, float]]) -> list[dict[str, Any]]:
    """Merge touching boxes of the same kind; each region keeps the highest score."""
    regions: list[dict[str, Any]] = []
    for kind in ("background", "foreground"):
        boxes = [box for box, box_kind, _ in found if box_kind == kind]
        for merged in merge_boxes(boxes, gap=1):
            score = max(score for box, box_kind, score in found
                        if box_kind == kind and merged.intersects(box))
            regions.append({"x": merged.x, "y": merged.y, "width": merged.width,
                            "height": merged.height, "kind": kind, "score": round(score, 4)})
    return sorted(regions, key=lambda region: (region["y"], region["x"]))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON under a temporary name, then rename it."""
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
