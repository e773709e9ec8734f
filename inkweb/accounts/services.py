"""Writes on users: create or update an account with a role."""

from __future__ import annotations

import logging
from typing import Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction

from inkweb.accounts.roles import Role

logger = logging.getLogger(__name__)

RoleName = Literal["uploader", "reviewer", "admin"]


@transaction.atomic
def user_create_or_update(
    *, username: str, password: str, role: RoleName, email: str = ""
) -> tuple[AbstractUser, bool]:
    """Create the user, or reset the password of an existing one, and grant `role`.

    "admin" makes a staff superuser. Returns the user and True when it was created.
    """
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    user.email = email or user.email
    user.set_password(password)
    if role == "admin":
        user.is_staff = True
        user.is_superuser = True
    user.full_clean()
    user.save()

    if role != "admin":
        group = Group.objects.get(name=Role(role).value)
        user.groups.add(group)

    logger.info("%s user %s with role %s", "Created" if created else "Updated", username, role)
    return user, created
