"""The manifest of an exported version: one entry per slide, written as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from django.utils import timezone

from inkweb.core.spreadsheets import csv_safe_cell
from inkweb.datasets.models import DatasetExport, DatasetVersionMember
from pipeline.export import ALLOWED_TAGS, DEIDENTIFICATION_POLICY, ExportResult
from pipeline.version import __version__

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
MANIFEST_FORMAT = "inkweb-dataset-export/1"

CSV_COLUMNS = (
    "identifier",
    "file",
    "width",
    "height",
    "mpp_x",
    "mpp_y",
    "magnification",
    "sha256",
    "size_bytes",
    "pipeline_version",
    "models",
    "restore_method",
    "run_id",
    "reviewer",
    "decision_time",
)


def manifest_slide_entry(member: DatasetVersionMember, result: ExportResult) -> dict[str, Any]:
    """Return the manifest entry of one exported slide: file, geometry, provenance, review."""
    report = member.run.report or {}
    run_options = report.get("options") or member.run.options or {}
    magnification = (member.slide.info or {}).get("magnification")
    return {
        "identifier": member.identifier,
        "file": result.path.name,
        "width": result.width,
        "height": result.height,
        "mpp_x": result.mpp_x,
        "mpp_y": result.mpp_y,
        "magnification": float(magnification) if isinstance(magnification, int | float) else None,
        "levels": [list(size) for size in result.levels],
        "sha256": result.sha256,
        "size_bytes": result.size_bytes,
        "level0": result.level0,
        "restored_sha256": member.restored_sha256,
        "pipeline_version": report.get("pipeline_version"),
        "models": dict(report.get("models") or {}),
        "restore_method": report.get("restore_method") or run_options.get("restore_method"),
        "run_id": member.run_id,
        "review_id": member.review_id,
        "reviewer": member.review.reviewer.get_username(),
        "decision_time": member.review.created_at.isoformat(),
    }


def manifest_build(
    *, export: DatasetExport, entries: list[dict[str, Any]], results: list[ExportResult]
) -> dict[str, Any]:
    """Return the whole manifest of `export` from its slide entries and export results."""
    version = export.version
    dataset = export.dataset
    return {
        "format": MANIFEST_FORMAT,
        "dataset": {
            "name": dataset.name,
            "slug": dataset.slug,
            "description": dataset.description,
        },
        "version": version.number,
        "frozen_at": version.created_at.isoformat(),
        "frozen_by": version.created_by.get_username(),
        "exported_at": timezone.now().isoformat(),
        "exporter_version": __version__,
        "slide_count": len(entries),
        "total_bytes": sum(entry["size_bytes"] for entry in entries),
        "slides": entries,
        "deidentification": {
            "never_written": list(DEIDENTIFICATION_POLICY),
            "kept_tags": sorted(ALLOWED_TAGS.values()),
            "slides": {
                result.identifier: {"removed": result.removed, "checks": result.checks}
                for result in results
            },
        },
    }


def manifest_csv_text(manifest: dict[str, Any]) -> str:
    """Return the slide entries as CSV with the columns of CSV_COLUMNS.

    Cells that a spreadsheet would run as a formula get a leading apostrophe.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for entry in manifest["slides"]:
        row = dict(entry)
        row["models"] = "; ".join(
            f"{name}={value}" for name, value in sorted(entry["models"].items())
        )
        writer.writerow({key: csv_safe_cell(row.get(key)) for key in CSV_COLUMNS})
    return buffer.getvalue()


def manifest_json_text(manifest: dict[str, Any]) -> str:
    """Return the manifest as indented JSON."""
    return json.dumps(manifest, indent=2) + "\n"


def manifest_write(folder: Path, manifest: dict[str, Any]) -> list[Path]:
    """Write manifest.json and manifest.csv into `folder`, each under a temporary name first."""
    written = []
    for name, text in (
        (MANIFEST_JSON, manifest_json_text(manifest)),
        (MANIFEST_CSV, manifest_csv_text(manifest)),
    ):
        path = folder / name
        temporary = folder / f".{name}.partial"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written
