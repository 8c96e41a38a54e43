"""Reading XTuner's training log: progress lines while it runs, the loss curve afterwards."""

from __future__ import annotations

import re
from pathlib import Path

from persona.train.progress import say

ITER_LINE = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\].*?time:\s*([\d.]+).*?loss:\s*([\d.]+)")
LOG_TIME = re.compile(r"^\d\d/\d\d \d\d:\d\d:\d\d")


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class TrainWatcher:
    """Turns XTuner's log into short progress lines (step, loss, speed, ETA)."""

    def __init__(self):
        self.seconds: list[float] = []
        self.in_sample = False
        self.total: int | None = None  # iterations of the whole run, once a step is logged
        self.crashed = False  # XTuner exits 0 even when its training script raised

    def __call__(self, line: str) -> None:
        match = ITER_LINE.search(line)
        if match:
            step, total, seconds, loss = match.groups()
            self.total = int(total)
            self.seconds.append(float(seconds))
            recent = self.seconds[-5:]  # the last few intervals: speed drifts with the machine's load
            eta = (int(total) - int(step)) * sum(recent) / len(recent)
            say(f"step {step}/{total}  loss {float(loss):.3f}  {float(seconds):.2f} s/step  "
                f"ETA {duration(eta)}")
        elif "Advance dataloader" in line or "resumed epoch" in line:
            say(line.split(" - ")[-1].strip())
        elif "Sample output:" in line:  # EvaluateChatHook
            self.in_sample = True
            say("sample answer:")
        elif self.in_sample and LOG_TIME.match(line):
            self.in_sample = False
        elif self.in_sample and line.strip():
            print(f"       | {line}", flush=True)
        elif "Traceback" in line or "Error:" in line:
            self.crashed = self.crashed or line.startswith("Traceback (most recent call last)")
            print(f"       ! {line}", flush=True)


def loss_curve(log: Path) -> list[dict]:
    """Every logged step of train.log; a resumed run's steps replace the interrupted run's."""
    points: dict[int, dict] = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        match = ITER_LINE.search(line)
        if match:
            step, _, seconds, loss = match.groups()
            points[int(step)] = {"step": int(step), "loss": float(loss), "s_per_step": float(seconds)}
    return [points[step] for step in sorted(points)]
