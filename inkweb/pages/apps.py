"""App configuration of pages."""

from django.apps import AppConfig


class PagesConfig(AppConfig):
    """HTML pages; data comes from the other apps' selectors."""

    name = "inkweb.pages"
    label = "pages"
