"""Storage settings: the folder of slides, thumbnails and pipeline outputs, and upload limits."""

from __future__ import annotations

from inkweb.settings.core import VAR_DIR
from inkweb.settings.env import env_int, env_path

# Layout under INKWEB_STORAGE: originals/ (read-only after ingest), outputs/ (one folder
# per run), thumbnails/, incoming/ (uploads being validated) and tmp/ (Django upload spool).
INKWEB_STORAGE = env_path("INKWEB_STORAGE", VAR_DIR / "storage", base=VAR_DIR.parent)

INKWEB_MAX_UPLOAD_BYTES = env_int("INKWEB_MAX_UPLOAD_BYTES", 20 * 1024**3, minimum=1)

# Uploads above 2.5 MB are spooled to disk. The spool is on the storage volume, so the
# final move into originals/ is a rename instead of a copy.
FILE_UPLOAD_TEMP_DIR = str(INKWEB_STORAGE / "tmp")
FILE_UPLOAD_PERMISSIONS = 0o644
