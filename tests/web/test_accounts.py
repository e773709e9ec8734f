"""Accounts: role groups, the user command and role checks."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from inkweb.accounts.roles import Role, user_has_role


@pytest.mark.django_db
def test_role_groups_created_by_migration():
    assert set(Group.objects.values_list("name", flat=True)) >= {"uploader", "reviewer"}


@pytest.mark.django_db
def test_create_user_command_is_idempotent(capsys):
    call_command(
        "inkweb_create_user",
        "--username",
        "lee",
        "--password",
        "first-pass-1",
        "--role",
        "uploader",
    )
    call_command(
        "inkweb_create_user",
        "--username",
        "lee",
        "--password",
        "second-pass-2",
        "--role",
        "reviewer",
    )
    output = capsys.readouterr().out
    assert "Created user lee with roles uploader" in output
    assert "Updated user lee with roles reviewer" in output

    user = get_user_model().objects.get(username="lee")
    assert user.check_password("second-pass-2")
    assert user_has_role(user, Role.UPLOADER)
    assert user_has_role(user, Role.REVIEWER)
    assert not user.is_staff


@pytest.mark.django_db
def test_create_user_command_repeated_role(capsys):
    call_command(
        "inkweb_create_user", "--username", "max", "--password", "pass-max-1",
        "--role", "reviewer", "--role", "uploader",
    )
    user = get_user_model().objects.get(username="max")

    assert "Created user max with roles reviewer, uploader" in capsys.readouterr().out
    assert user_has_role(user, Role.REVIEWER)
    assert user_has_role(user, Role.UPLOADER)


@pytest.mark.django_db
def test_admin_role_is_staff_with_every_role():
    call_command(
        "inkweb_create_user", "--username", "ada", "--password", "admin-pass-1", "--role", "admin"
    )
    user = get_user_model().objects.get(username="ada")
    assert user.is_staff
    assert user.is_superuser
    assert user_has_role(user, Role.REVIEWER)


@pytest.mark.django_db
def test_create_user_needs_password(monkeypatch):
    monkeypatch.delenv("INKWEB_USER_PASSWORD", raising=False)
    monkeypatch.setattr("os.isatty", lambda fd: False)
    with pytest.raises(CommandError, match="no password given"):
        call_command("inkweb_create_user", "--username", "kim", "--role", "reviewer")


@pytest.mark.django_db
def test_inactive_user_has_no_role(reviewer):
    reviewer.is_active = False
    reviewer.save()
    assert not user_has_role(reviewer, Role.REVIEWER)
