"""What the pipeline tells its user: progress lines, the time each stage took, and the error it
stops with."""

from __future__ import annotations

import time

from persona.errors import PersonaError


class PipelineError(PersonaError, RuntimeError):
    """A stage failed or the input is unusable; the message says which and what to look at."""


def say(message: str) -> None:
    print(f"train: {message}", flush=True)


class Stopwatch:
    """Seconds per stage, in order."""

    def __init__(self):
        self.started = self.lap_started = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.lap_started, 1)
        self.lap_started = now
        say(f"{name} done in {self.laps[name]:.1f} s")

    def total(self) -> float:
        return round(time.monotonic() - self.started, 1)
