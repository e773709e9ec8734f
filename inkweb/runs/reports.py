"""Summaries of pipeline run reports for the viewer page."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.options import RESTORE_METHOD_LABELS


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def restore_method_label(method: str) -> str:
    """Return the display name of a restoration method; unknown names are shown as they are."""
    return RESTORE_METHOD_LABELS.get(method, method)


def run_report_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the figures the viewer shows from a run report; missing keys become None.

    Keys read: ink_found, regions[].kind, tiles.{total,screened,classified_ink,changed,
    unchanged_mode,touched}, corrections, timings_s, device, pipeline_version, models,
    input.sha256_before and input.sha256_after.
    """
    if not report:
        return None

    regions = report.get("regions") or []
    kinds = Counter(
        str(region.get("kind", "unknown")) for region in regions if isinstance(region, dict)
    )
    tiles = report.get("tiles") or {}
    timings = dict(report.get("timings_s") or {})
    # The pipeline records its wall time as "total" beside the stages; summing every
    # entry would count the run twice.
    total = _number(timings.pop("total", None))
    seconds = [value for value in map(_number, timings.values()) if value is not None]
    if total is None and seconds:
        total = sum(seconds)
    source = report.get("input") or {}
    before, after = source.get("sha256_before"), source.get("sha256_after")

    return {
        "ink_found": report.get("ink_found"),
        "region_count": len(regions),
        "region_kinds": dict(sorted(kinds.items())),
        "tiles_total": tiles.get("total"),
        "tiles_screened": tiles.get("screened"),
        "tiles_classified_ink": tiles.get("classified_ink"),
        "tiles_changed": tiles.get("changed"),
        "unchanged_mode": tiles.get("unchanged_mode"),
        # Revisions only: rectangles applied and the tiles they touched.
        "corrections": len(report.get("corrections") or []),
        "tiles_touched": tiles.get("touched"),
        "total_seconds": total,
        "timings": {str(stage): _number(value) for stage, value in timings.items()},
        "device": report.get("device"),
        "pipeline_version": report.get("pipeline_version"),
        "models": report.get("models") or {},
        # Reports written before the method became an option all used "od".
        "restore_method": restore_method_label(
            report.get("restore_method") or (report.get("options") or {}).get("restore_method")
            or "od"),
        "original_unchanged": (before == after) if before and after else None,
    }
