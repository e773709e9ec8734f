"""Pytest plugin giving test runs a throwaway INKWEB_SECRET_KEY before Django loads settings.

Load it early with `-p tests.web.testenv` (pytest's addopts): conftest files are read after
pytest-django has imported the settings, which reject a missing key unless INKWEB_DEBUG=1.
A key set in the environment wins.
"""

import os
import secrets

os.environ.setdefault("INKWEB_SECRET_KEY", secrets.token_urlsafe(50))
