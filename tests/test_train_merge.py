"""`xtuner convert merge` is exact: base + LoRA adapter and the merged model give the same logits.

A tiny random Llama-shaped model (built from a config, as trl's tiny-model scripts do) and a random
LoRA adapter with non-zero B on every projection, merged by the real `xtuner convert merge` into
safetensors; then peft's base + adapter and the merged folder are run on the same random tokens.
The merge writes float16 weights, so the tolerance is float16 rounding; the adapter's own effect
is checked to be far larger, so the comparison could fail.
"""

import json
import subprocess

import pytest

from persona import envs
from persona.paths import REPO_ROOT, model_dir

TOKENIZER = model_dir("smollm2-135m-instruct")
SCRIPT = REPO_ROOT / "tests" / "train_env" / "merge_check.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built"),
    pytest.mark.skipif(not (TOKENIZER / "tokenizer.json").exists(), reason="run `persona setup`"),
]


def in_train_env(*command):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            env=envs.command_env("train"), cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def test_merged_model_equals_base_plus_adapter(tmp_path):
    python = envs.python("train")
    in_train_env(python, SCRIPT, "make", tmp_path, TOKENIZER)
    in_train_env(python.parent / "xtuner", "convert", "merge", tmp_path / "base", tmp_path / "adapter",
                 tmp_path / "merged", "--safe-serialization", "--device", "cpu")
    assert list((tmp_path / "merged").glob("*.safetensors"))
    assert not list((tmp_path / "merged").glob("*.bin"))
    report = json.loads(in_train_env(python, SCRIPT, "compare", tmp_path).strip().splitlines()[-1])
    print(f"merge equivalence: {report}")  # shown with -s
    assert report["lora_keys_left"] == []
    assert report["base_vs_adapter"] > 0.05, report  # the adapter matters
    assert report["merged_vs_adapter"] < 2e-3 * max(1.0, report["logit_scale"]), report
    assert report["merged_vs_adapter"] < report["base_vs_adapter"] / 20, report
