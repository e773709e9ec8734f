"""Management commands of the slides app."""
