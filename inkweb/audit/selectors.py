"""Reads of the audit log: filtered lists and the rows of the CSV export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date

from django.db.models import Q, QuerySet

from inkweb.audit.models import AuditEvent
from inkweb.core.spreadsheets import csv_safe_cell

CSV_COLUMNS = (
    "id",
    "created_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "slide_id",
    "summary",
    "details",
)


def audit_event_list(
    *,
    action: str | None = None,
    actor: str | None = None,
    slide_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """Return audit events, newest first, filtered by every argument that is given.

    `actor` matches the recorded username without regard to case. `date_from` and
    `date_to` are inclusive calendar days in the configured time zone (TIME_ZONE).
    """
    events = AuditEvent.objects.all()
    if action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor_name__iexact=actor)
    if slide_id is not None:
        events = events.filter(slide_id=slide_id)
    if date_from is not None:
        events = events.filter(created_at__date__gte=date_from)
    if date_to is not None:
        events = events.filter(created_at__date__lte=date_to)
    return events.order_by("-created_at", "-id")


def audit_event_batches(
    events: QuerySet[AuditEvent], *, batch_size: int = 1000
) -> Iterator[list[AuditEvent]]:
    """Yield `events` (ordered newest first) in lists of up to `batch_size` rows.

    Each batch is one query that continues after the last row of the previous one, so
    memory stays bounded and rows inserted meanwhile do not shift later batches.
    """
    last: AuditEvent | None = None
    while True:
        page = events
        if last is not None:
            page = events.filter(
                Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.pk)
            )
        batch = list(page.order_by("-created_at", "-id")[:batch_size])
        if not batch:
            return
        yield batch
        if len(batch) < batch_size:
            return
        last = batch[-1]


class _LineBuffer:
    """File-like object whose write returns the line, so csv.writer can build strings."""

    def write(self, line: str) -> str:
        return line


def audit_csv_header() -> str:
    """Return the CSV header line."""
    return csv.writer(_LineBuffer()).writerow(CSV_COLUMNS)


def audit_csv_lines(batch: list[AuditEvent]) -> str:
    """Return the CSV lines of one batch of events, cells made safe for spreadsheets."""
    writer = csv.writer(_LineBuffer())
    lines = []
    for event in batch:
        row = (
            event.pk,
            event.created_at.isoformat(),
            event.actor_name,
            event.action,
            event.target_type,
            event.target_id,
            event.slide_id,
            event.summary,
            json.dumps(event.details, sort_keys=True),
        )
        lines.append(writer.writerow([csv_safe_cell(value) for value in row]))
    return "".join(lines)
