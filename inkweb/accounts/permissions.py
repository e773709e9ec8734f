"""DRF permission classes for the two roles."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from inkweb.accounts.roles import Role, user_has_role


class IsUploader(BasePermission):
    """Allow users of the uploader role (and staff)."""

    message = "This action needs the uploader role; ask an administrator to grant it."

    def has_permission(self, request, view) -> bool:  # noqa: D102
        return user_has_role(request.user, Role.UPLOADER)


class IsReviewer(BasePermission):
    """Allow users of the reviewer role (and staff)."""

    message = "This action needs the reviewer role; ask an administrator to grant it."

    def has_permission(self, request, view) -> bool:  # noqa: D102
        return user_has_role(request.user, Role.REVIEWER)
