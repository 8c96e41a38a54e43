"""benchmarks/demo_time.py reads the phases of a first `make demo` off the demo's own lines, and
writes no scratch path or generated key into its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.demo_time import BANNER, phases, sanitise

# What `make demo` printed on a fresh home, shortened (times in s since the start).
LINES = [
    (0.1, "python3.11 -m venv .venv"),
    (75.1, ".venv/bin/persona up --card cards/xiaocong.yaml --api-port 52145 --ui-port 35807"),
    (85.6, "persona: converting the embedded smollm2-135m-instruct (GGUF from PyPI) to /x/models/s"),
    (177.2, "persona: serve environment ready in 92 s"),
    (202.6, "wrote /x/models/smollm2-135m-instruct"),
    (204.0, "persona: building the train environment from requirements/train.txt (once)"),
    (300.2, "persona: train environment ready in 220 s"),
    (301.0, "train: dataset written to /x/runs/xiaocong/data"),
    (302.5, "train: data done in 0.4 s"),
    (1200.0, "train: train done in 897.5 s"),
    (1211.0, "train: convert done in 11.0 s"),
    (1546.4, "persona: vLLM ready in 46 s"),
    (1549.5, "================================================================"),
    (1549.5, "  Xiaocong (小葱) is up"),
    (1549.5, "  chat  http://127.0.0.1:35807"),
]


def test_each_phase_runs_from_the_end_of_the_one_before():
    found = phases(LINES)
    assert [p["phase"] for p in found] == [
        "app environment (make)", "serve environment", "base conversion", "train environment",
        "train: data", "train: train", "train: convert", "vLLM start", "chat start, to the banner"]
    assert found[3] == {"phase": "train environment", "ends_at_s": 300.2, "seconds": 97.6}
    assert found[-1]["ends_at_s"] == 1549.5
    assert sum(p["seconds"] for p in found) == pytest.approx(1549.5)  # they add up to the URLs' time


def test_only_the_banner_headline_marks_the_demo_up():
    assert BANNER.match("  Xiaocong (小葱) is up")
    assert not BANNER.match("persona: Xiaocong (小葱) is up")  # an unindented line is no banner


def test_the_log_names_folders_by_role_and_hides_the_key():
    text = ("log: /tmp/persona-demo-1/home/.cache/persona/logs/vllm.log run /tmp/persona-demo-1/runs/x\n"
            "  key   sk-persona-e6Tq82LD6XsAabKi   (generated)\n")
    clean = sanitise(text, {Path("/tmp/persona-demo-1/runs"): "RUNS",
                            Path("/tmp/persona-demo-1/home"): "HOME"})
    assert clean == "log: HOME/.cache/persona/logs/vllm.log run RUNS/x\n  key   sk-…   (generated)\n"
