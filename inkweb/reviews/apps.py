"""App configuration of reviews."""

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    """Review decisions, kept as an append-only log per slide."""

    name = "inkweb.reviews"
    label = "reviews"
