"""The CUDA training path: `pytest -m gpu` (or `make test-gpu`) on a machine with an NVIDIA GPU;
skipped where none answers.

`persona train` runs in the train environment, or in the interpreter PERSONA_TRAIN_PYTHON names
(an image that already holds torch and XTuner). The base is the card's (the embedded SmolLM2,
converted on first use) unless PERSONA_GPU_BASE names a model folder, for machines without the
preset's package (benchmarks/gpu_qlora.py build writes a random SmolLM2-shaped one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from persona import base_models, commands
from persona.card import load_card


def _gpu_answers() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _gpu_answers(), reason="no NVIDIA GPU answers nvidia-smi")]


def test_chunked_loss_matches_the_full_loss_on_cuda():
    """The lean model's loss and its gradient equal transformers' full-logits cross-entropy, in
    the training interpreter (the one with torch; this one has none)."""
    from persona import envs

    result = envs.run_module("train", "persona.train.lean_model_check", [])
    assert result.returncode == 0, f"the chunked loss disagrees (exit {result.returncode}; above)"


def test_persona_train_on_cuda(tmp_path):
    """`persona train` on CUDA: bf16 AMP, CUDA NF4, packing, the lean model; loss falls; the
    adapter is converted and merged."""
    card_path = commands.DEFAULT_CARD
    base = os.environ.get("PERSONA_GPU_BASE") or str(base_models.resolve(load_card(card_path).base))
    card = tmp_path / "card.yaml"
    card.write_text(card_path.read_text(encoding="utf-8").replace(
        "base: smollm2-135m-instruct", f"base: {json.dumps(base)}"), encoding="utf-8")
    assert json.dumps(base) in card.read_text(encoding="utf-8")

    run = commands.train(card=card, out=tmp_path / "run", max_steps=60)

    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    options = manifest["hyperparameters"]
    assert options["device"] == "cuda"
    assert options["precision"] in ("bfloat16", "float16")
    assert options["lean_model"] and options["pack_to_max_length"]
    config = (run / "xtuner_config.py").read_text(encoding="utf-8")
    assert "type=AmpOptimWrapper" in config and f'dtype="{options["precision"]}"' in config
    assert "load_in_4bit=True" in config and "type=build_lean_model" in config
    # mmengine reports GPU memory in its iteration lines only when training on CUDA
    log = (run / "work" / "train.log").read_text(encoding="utf-8", errors="replace")
    assert "memory:" in log
    curve = [point["loss"] for point in manifest["loss_curve"]]
    assert len(curve) >= 8
    first, last = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    # A real base falls far; a random SmolLM2-shaped one (PERSONA_GPU_BASE) fell 10.31 -> 9.75.
    assert last < first, f"the loss did not fall: {first:.3f} -> {last:.3f}"
    assert (run / "adapter" / "adapter_config.json").exists()
    assert list((run / "merged").glob("*.safetensors"))
    # the cases whose XTuner and chat-template renderings were compared token for token
    checked = set(manifest["chat"]["token_identity"])
    assert {"en, no system", "zh, no system", "system", "two turns"} <= checked
