"""Create a user with a role, or reset the password and add the role if the user exists."""

from __future__ import annotations

import getpass
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inkweb.accounts.services import user_create_or_update


class Command(BaseCommand):
    """manage.py inkweb_create_user --username NAME --role reviewer|uploader|admin."""

    help = (
        "Create a user with a role (uploader, reviewer or admin). The password comes from "
        "--password, else $INKWEB_USER_PASSWORD, else a prompt. An existing user gets the "
        "new password and the role added."
    )

    def add_arguments(self, parser):  # noqa: D102
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", help="password; prefer $INKWEB_USER_PASSWORD")
        parser.add_argument("--role", required=True, choices=["uploader", "reviewer", "admin"])
        parser.add_argument("--email", default="")

    def handle(self, *args, **options):  # noqa: D102
        password = options["password"] or os.environ.get("INKWEB_USER_PASSWORD")
        if not password:
            if not os.isatty(0):
                raise CommandError("no password given; pass --password or set INKWEB_USER_PASSWORD")
            password = getpass.getpass(f"Password for {options['username']}: ")

        try:
            user, created = user_create_or_update(
                username=options["username"],
                password=password,
                role=options["role"],
                email=options["email"],
            )
        except ValidationError as error:
            raise CommandError(f"invalid user {options['username']!r}: {error}") from error

        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} user {user.username} with role {options['role']}")
