"""Keep third-party imaging libraries from flooding the logs during slide reads.

large-image logs tracebacks at ERROR level for problems it recovers from (a
strip-based label image, a missing memcached), and pydicom warns about long UIDs.
The pipeline turns real failures into its own exceptions, so these records are
dropped while pipeline code calls into the libraries.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Iterator

NOISY_LOGGERS = ("large_image", "tifftools", "pydicom", "wsidicom", "tifffile", "PIL", "openslide")

_lock = threading.Lock()
_depth = 0
_saved_levels: dict[str, int] = {}


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence the loggers in NOISY_LOGGERS and Python warnings inside the block.

    Nested and concurrent uses share one saved state: levels are restored when the
    outermost block exits.
    """
    global _depth
    with _lock:
        if _depth == 0:
            for name in NOISY_LOGGERS:
                log = logging.getLogger(name)
                _saved_levels[name] = log.level
                log.setLevel(logging.CRITICAL + 1)
        _depth += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for name, level in _saved_levels.items():
                    logging.getLogger(name).setLevel(level)
                _saved_levels.clear()


@functools.cache
def configure_large_image() -> None:
    """Use large-image's in-process tile cache instead of probing for memcached."""
    import large_image

    with quiet_third_party():
        large_image.config.setConfig("cache_backend", "python")
