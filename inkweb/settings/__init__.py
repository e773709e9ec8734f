"""Django settings for InkWeb, read once from environment variables and split by topic.

Each topic module parses its own variables and raises ImproperlyConfigured naming the
variable and the invalid value, so a bad deployment fails at start, not on first use.
"""

from inkweb.settings.api import *  # noqa: F403
from inkweb.settings.core import *  # noqa: F403
from inkweb.settings.database import *  # noqa: F403
from inkweb.settings.exports import *  # noqa: F403
from inkweb.settings.logging import *  # noqa: F403
from inkweb.settings.reviews import *  # noqa: F403
from inkweb.settings.services import *  # noqa: F403
from inkweb.settings.storage import *  # noqa: F403
