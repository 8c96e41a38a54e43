"""Real XTuner runs through `persona train`: a run killed after its first checkpoint resumes from
it and finishes into the whole artifact; a finished run is reused, and refused for other options;
`--method full` trains without LoRA and needs no merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DEFAULT_CARD
from persona import envs
from persona.paths import REPO_ROOT

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")]

SHORT = ["--max-steps", "12", "--save-steps", "4"]


def persona_train(run: Path, *extra: str):
    return [sys.executable, "-m", "persona.cli", "train", "--card", str(DEFAULT_CARD), "--out",
            str(run), *extra]


def test_killed_run_resumes_and_finishes(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(persona_train(run, *SHORT), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 420
        while not (run / "work" / "iter_4.pth").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.5)
        time.sleep(1)  # let the checkpoint's last_checkpoint pointer land
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    assert not (run / "manifest.json").exists()

    second = subprocess.run(persona_train(run, *SHORT), cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=900)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-5000:]
    assert "train: resuming from iter_" in out, out[-5000:]
    steps = [int(line.split("step ")[1].split("/")[0]) for line in out.splitlines()
             if line.startswith("train: step ")]
    assert steps and steps[0] > 4, steps  # progress lines (every 5 steps) continue past the checkpoint
    log = (run / "work" / "train.log").read_text()
    assert "resumed epoch: 0, iter: " in log and "Saving checkpoint at 12 iterations" in log

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["resumed_from"].startswith("iter_") and manifest["checkpoint"].endswith("iter_12.pth")
    assert manifest["final_loss"] == manifest["loss_curve"][-1]["loss"] and manifest["final_loss"] > 0
    assert [p["step"] for p in manifest["loss_curve"]] == [5, 10]
    assert set(manifest["timings_s"]) >= {"data", "train", "convert", "merge", "total"}
    assert manifest["versions"]["xtuner"] == "0.2.0"
    assert manifest["hyperparameters"]["max_steps"] == 12
    for path in ("merged/model.safetensors", "merged/chat_template.jinja", "adapter/adapter_config.json",
                 "xtuner_config.py", "data/train.json", "data/stats.json", "loss_curve.png"):
        assert (run / path).is_file(), path
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert manifest["chat"]["token_identity"]

    again = subprocess.run(persona_train(run, *SHORT), cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "already trained" in again.stdout
    other = subprocess.run(persona_train(run, *SHORT, "--lr", "0.001"), cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2
    assert "lr: 0.002 in the run, 0.001 requested" in other.stderr and "--force" in other.stderr


def test_full_fine_tune_has_no_adapter_and_no_merge(tmp_path):
    run = tmp_path / "full"
    result = subprocess.run(persona_train(run, "--method", "full", "--max-steps", "2"),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert "xtuner convert merge" not in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["method"] == "full" and manifest["artifact"]["adapter"] is None
    assert manifest["hyperparameters"]["lr"] == 2e-5
    assert not (run / "adapter").exists()
    assert list((run / "merged").glob("*.safetensors"))
    assert manifest["chat"]["eos_token_id"] == 2  # SmolLM2's <|im_end|>
