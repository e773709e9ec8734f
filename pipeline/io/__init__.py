"""Reading slides and writing pyramidal TIFF outputs."""

from pipeline.io.info import SlideInfo
from pipeline.io.slide import Slide, open_slide

__all__ = ["Slide", "SlideInfo", "open_slide"]
