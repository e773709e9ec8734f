"""Template context: which roles the signed-in user holds."""

from __future__ import annotations

from django.http import HttpRequest

from inkweb.accounts.roles import Role, user_has_role


def roles(request: HttpRequest) -> dict[str, bool]:
    """Add `can_upload` and `can_review` for templates to show or hide actions."""
    user = getattr(request, "user", None)
    if user is None:
        return {"can_upload": False, "can_review": False}
    return {
        "can_upload": user_has_role(user, Role.UPLOADER),
        "can_review": user_has_role(user, Role.REVIEWER),
    }
