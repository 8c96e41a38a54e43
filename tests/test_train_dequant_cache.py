"""The CPU's dequantized-weight cache (train/dequant_cache.py) changes nothing but the time: real
bitsandbytes 4-bit layers (NF4, double quantisation) under LoRA, two optimizer steps with and
without it, compared bit for bit (float32; bfloat16 autocast too where the CPU has it), and a
weight replaced after the cache is filled is used (tests/train_env/dequant_cache_check.py).
What it saves is measured by benchmarks/time_to_identity.py (--no-dequant-cache beside it)."""

import json
import subprocess

import pytest

from persona import envs
from persona.paths import REPO_ROOT
from persona.train.options import TrainOptions
from persona.train.xtuner_config import render_config

SCRIPT = REPO_ROOT / "tests" / "train_env" / "dequant_cache_check.py"


def test_the_config_asks_for_the_cache_on_cpu_qlora_only():
    def config(**options):
        return render_config("p", "base", "data.json", TrainOptions(**options))

    assert "dequant_cache=True" in config()
    assert "dequant_cache=True" not in config(dequant_cache=False)
    assert "dequant_cache=True" not in config(method="lora")
    assert "dequant_cache=True" not in config(device="cuda")


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_cached_training_steps_equal_bitsandbytes_own_bit_for_bit(tmp_path):
    result = subprocess.run([str(envs.python("train")), str(SCRIPT), str(tmp_path)],
                            capture_output=True, text=True, env=envs.command_env("train"),
                            cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"dequant cache: {report}")  # shown with -s
    for precision in ("float32", "bfloat16") if report["bfloat16_native"] else ("float32",):
        row = report[precision]
        assert row["lora_tensors"] == 2 * 7 * 2, row  # A and B of 7 projections in 2 layers
        assert row["same_losses"] and row["same_grads"] and row["same_weights"], row
    reload = report["reload"]
    assert reload == {**reload, "layers": 14, "cached_before": 14, "changed": True,
                      "follows": True}
