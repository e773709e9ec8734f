"""App configuration of accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Roles are Django groups; the groups are created by a data migration."""

    name = "inkweb.accounts"
    label = "accounts"
