"""Review workflow settings."""

from __future__ import annotations

from inkweb.settings.env import env_bool

# When on, a reviewer cannot approve a slide they uploaded or a run they requested;
# rejecting and asking for rework stay allowed.
INKWEB_SEPARATION_OF_DUTIES = env_bool("INKWEB_SEPARATION_OF_DUTIES", False)
