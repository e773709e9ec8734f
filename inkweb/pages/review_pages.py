"""Pages of the review workflow: the review queue and the audit log."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from inkweb.accounts.roles import Role, user_has_role
from inkweb.audit.filters import AuditFilterSerializer
from inkweb.audit.models import AuditEvent
from inkweb.audit.selectors import audit_event_list
from inkweb.reviews.selectors import review_queue

AUDIT_PAGE_SIZE = 100
# NOTE: the queue page lists this many slides; the API pages through all of them.
QUEUE_PAGE_LIMIT = 500


def review_queue_page(request: HttpRequest) -> HttpResponse:
    """Render the slides awaiting review, oldest finished run first."""
    queue = review_queue()
    return render(
        request,
        "pages/review_queue.html",
        {
            "queue": list(queue[:QUEUE_PAGE_LIMIT]),
            "queue_count": queue.count(),
            "queue_limit": QUEUE_PAGE_LIMIT,
            "done": request.GET.get("done") == "1",
        },
    )


def audit_page(request: HttpRequest) -> HttpResponse:
    """Render the audit log with its filter form; reviewers and staff only (403 otherwise)."""
    if not user_has_role(request.user, Role.REVIEWER):
        raise PermissionDenied("The audit log is open to reviewers and administrators.")

    filters = AuditFilterSerializer(data=request.GET)
    valid = filters.is_valid()
    events = AuditEvent.objects.none()
    if valid:
        events = audit_event_list(**filters.selector_arguments())
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))

    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "pages/audit.html",
        {
            "page": page,
            "filters": {key: request.GET.get(key, "") for key in filters.fields},
            "errors": filters.errors if not valid else {},
            "actions": AuditEvent.Action.choices,
            "query": query.urlencode(),
        },
    )
