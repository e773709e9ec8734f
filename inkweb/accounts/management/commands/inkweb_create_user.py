"""Create a user with roles, or reset the password and add the roles if the user exists."""

from __future__ import annotations

import getpass
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inkweb.accounts.services import user_create_or_update


class Command(BaseCommand):
    """manage.py inkweb_create_user --username NAME --role reviewer [--role uploader]."""

    help = (
        "Create a user with one or more roles (uploader, reviewer or admin; repeat --role). "
        "The password comes from --password, else $INKWEB_USER_PASSWORD, else a prompt. An "
        "existing user gets the new password and the roles added."
    )

    def add_arguments(self, parser):  # noqa: D102
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", help="password; prefer $INKWEB_USER_PASSWORD")
        parser.add_argument(
            "--role", required=True, action="append", choices=["uploader", "reviewer", "admin"]
        )
        parser.add_argument("--email", default="")

    def handle(self, *args, **options):  # noqa: D102
        password = options["password"] or os.environ.get("INKWEB_USER_PASSWORD")
        if not password:
            if not os.isatty(0):
                raise CommandError("no password given; pass --password or set INKWEB_USER_PASSWORD")
            password = getpass.getpass(f"Password for {options['username']}: ")

        roles = list(dict.fromkeys(options["role"]))
        created = False
        try:
            for role in roles:
                user, created_now = user_create_or_update(
                    username=options["username"],
                    password=password,
                    role=role,
                    email=options["email"],
                )
                created = created or created_now
        except ValidationError as error:
            raise CommandError(f"invalid user {options['username']!r}: {error}") from error

        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} user {user.username} with roles {', '.join(roles)}")
