"""Marker-ink removal for whole-slide images: reading, screening, restoration, writing.

The package is a library and a command-line tool (``inkremove``); it never imports
Django. Its logger has a NullHandler so that applications decide where records go.
"""

import logging

from pipeline.io import Slide, SlideInfo, open_slide
from pipeline.options import RunOptions
from pipeline.progress import ProgressEvent
from pipeline.run import run_pipeline
from pipeline.version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ProgressEvent",
    "RunOptions",
    "Slide",
    "SlideInfo",
    "__version__",
    "open_slide",
    "run_pipeline",
]
