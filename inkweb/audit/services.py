"""Writes on the audit log."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from inkweb.audit.models import AuditEvent

logger = logging.getLogger(__name__)


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target_type: str,
    target_id: int | None,
    summary: str,
    slide_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event; ``actor`` None or anonymous records a system action.

    Call it inside the same transaction as the change it describes, so that the log
    never names a change that was rolled back.
    """
    user = actor if actor is not None and actor.is_authenticated else None
    event = AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        slide_id=slide_id,
        summary=summary[:500],
        details=details or {},
    )
    logger.info("audit: %s", event)
    return event
