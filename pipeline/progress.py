"""Progress events of a pipeline run and the stage clock behind ``timings_s``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# Stages in run order with their share of the progress bar (they sum to 1).
STAGE_WEIGHTS: dict[str, float] = {
    "open": 0.03,
    "screen": 0.07,
    "classify": 0.25,
    "restore": 0.45,
    "pyramid": 0.12,
    "finish": 0.08,
}
STAGES = tuple(STAGE_WEIGHTS)


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: ``done`` of ``total`` units of ``stage`` are complete."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share of the whole run completed, 0..1, from the stage order and weights."""
        if self.stage not in STAGE_WEIGHTS:
            return 0.0
        before = 0.0
        for stage in STAGES:
            if stage == self.stage:
                break
            before += STAGE_WEIGHTS[stage]
        within = min(1.0, self.done / self.total) if self.total > 0 else 1.0
        return min(1.0, before + STAGE_WEIGHTS[self.stage] * within)


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class ProgressReporter:
    """Sends events to an optional callback, at most every ``min_interval_s`` within a stage.

    The first and last event of each stage are always sent. Exceptions raised by the
    callback (RunCancelled in particular) propagate to the run.
    """

    callback: ProgressCallback | None
    min_interval_s: float = 0.2
    _last_sent: float = field(default=0.0, init=False)

    def emit(self, stage: str, done: int, total: int, message: str = "") -> None:
        """Report progress; throttled unless this is the first or last step of the stage."""
        if self.callback is None:
            return
        now = time.monotonic()
        boundary = done == 0 or done >= total
        if not boundary and now - self._last_sent < self.min_interval_s:
            return
        self._last_sent = now
        self.callback(ProgressEvent(stage=stage, done=done, total=total, message=message))


@dataclass
class StageClock:
    """Accumulates wall-clock seconds per named step."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        """Return the timings rounded to milliseconds."""
        return {name: round(value, 3) for name, value in self.seconds.items()}
