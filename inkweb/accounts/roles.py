"""Role names and the checks that views and services use."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models


class Role(models.TextChoices):
    """Roles stored as Django groups of the same name; staff users hold every role."""

    UPLOADER = "uploader", "Uploader"
    REVIEWER = "reviewer", "Reviewer"


def user_has_role(user: AbstractBaseUser | AnonymousUser, role: Role) -> bool:
    """Return True when the user is active and is staff or a member of the role's group."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    cached = getattr(user, "_inkweb_role_names", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._inkweb_role_names = cached
    return role.value in cached
