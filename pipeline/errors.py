"""Exception hierarchy raised by the ink-removal pipeline."""

from __future__ import annotations

from pathlib import Path


class InkRemovalError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class SlideReadError(InkRemovalError, OSError):
    """A slide file could not be opened or its pixels could not be decoded.

    ``path`` is the file and ``reason`` the cause in a few words. ``str(error)``
    combines both, so a caller can show it to a user unchanged.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read slide {Path(path).name!r}: {reason}")

    def __str__(self) -> str:
        return f"cannot read slide {Path(self.path).name!r}: {self.reason}"

    def __reduce__(self) -> tuple[type[SlideReadError], tuple[str, str]]:
        # OSError pickles its args; keep (path, reason) so RQ workers can ship the error.
        return (type(self), (self.path, self.reason))


class UnsupportedSlideError(SlideReadError, ValueError):
    """The file opens but is not an 8-bit brightfield RGB slide the pipeline can process."""


class RunCancelled(InkRemovalError):
    """A progress callback asked the run to stop; no outputs are kept."""
