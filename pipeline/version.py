"""The pipeline's version string, recorded in every run report."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("inkweb")
except metadata.PackageNotFoundError:
    # Running from a source checkout that is not installed; matches pyproject.toml.
    __version__ = "0.1.0"
