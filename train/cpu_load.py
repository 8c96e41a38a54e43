"""Sensing other work on the CPU before training starts, and making training share it politely."""

from __future__ import annotations

import os
import time

from persona.train.progress import say


def busy_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes right now (we have not started yet): /proc/stat
    sampled over `seconds`. The load average is no use here: it still counts the job that
    finished a minute ago, e.g. the previous test or benchmark step."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:  # not Linux: fall back to the 1-minute load average
        return os.getloadavg()[0]
    if total1 == total0:
        return 0.0
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def share_busy_cpu(env: dict[str, str]) -> None:
    """On a machine already busy, make torch's OpenMP threads sleep instead of spin while waiting.

    Measured with two trainings on the same 2 cores: each went from 1.45 to ~40 s/step, because
    libgomp's waiting threads spin through the other's time slices; with passive waiting two
    jobs take about twice as long instead. Alone, passive waiting costs 15-40%, so it is only
    chosen when other work keeps at least half a core busy (or when the caller sets
    OMP_WAIT_POLICY).
    """
    if "OMP_WAIT_POLICY" in env:
        return
    busy = busy_cores()
    if busy >= 0.5:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        say(f"note: other processes keep {busy:.1f} of {os.cpu_count()} cores busy, so training "
            "waits passively and will be slower than alone")
