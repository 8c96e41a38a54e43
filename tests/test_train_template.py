"""Serving sends exactly the tokens training saw: XTuner's qwen_chat encoding (BOS removed)
equals the chat template the pipeline writes next to the merged model, token for token.

Runs train/template_check.py inside the training env on the base model's tokenizer.
"""

import json
import shutil
import subprocess

import pytest

from persona import envs
from persona.card import parse_card
from persona.paths import REPO_ROOT, model_dir
from train.chat_template import IM_START, install_chat_template, token_id
from train.dataset import build_conversations

BASE = model_dir("smollm2-135m-instruct")
CARD = {"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
        "creator": {"zh": "不要葱姜蒜大佬", "en": "Master No-Scallion"}}

pytestmark = [
    pytest.mark.skipif(not envs.is_ready("train"),
                       reason="the training env is not built; run `persona setup --env train`"),
    pytest.mark.skipif(not (BASE / "tokenizer.json").exists(),
                       reason=f"no base tokenizer at {BASE}; run `persona setup`"),
]


def tokenizer_copy(tmp_path, default_system=None, ours=True):
    folder = tmp_path / ("ours" if ours else "stock")
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(BASE / name, folder / name)
    if ours:
        install_chat_template(folder, default_system)
    return folder


def run_check(folder, default_system=None, cases=None, tmp_path=None):
    command = [str(envs.python("train")), "-m", "train.template_check", str(folder)]
    if default_system:
        command += ["--default-system", default_system]
    if cases:
        path = tmp_path / "cases.json"
        path.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
        command += ["--cases", str(path)]
    env = envs.command_env("train")
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                            timeout=300)
    assert result.stdout.strip(), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def assert_identical(returncode, report):
    for item in report:
        assert item["conversation_equal"], (item["case"], item["trained"], item["served"])
        assert item["prompt_equal"], item["case"]
    assert returncode == 0


def test_training_samples_match_and_start_with_one_im_start(tmp_path):
    from train.template_check import CASES

    samples = build_conversations(parse_card(CARD))
    # single- and multi-turn, both languages, with and without system prompts
    picked = samples[:12] + [s for s in samples if len(s["conversation"]) > 1][:4]
    cases = {**CASES, **{f"sample {i}": sample["conversation"] for i, sample in enumerate(picked)}}
    folder = tokenizer_copy(tmp_path)
    returncode, report = run_check(folder, cases=cases, tmp_path=tmp_path)
    assert_identical(returncode, report)
    im_start = token_id(folder, IM_START)
    no_system = next(item for item in report if item["case"] == "en, no system")
    assert no_system["served"][0] == im_start and no_system["served"][1] != im_start


def test_card_default_system_prompt_matches(tmp_path):
    default = "You are Xiaocong, created by Master No-Scallion."
    assert_identical(*run_check(tokenizer_copy(tmp_path, default), default_system=default))


def test_stock_smollm2_template_would_not_match(tmp_path):
    """The check can fail: SmolLM2's own template injects its system prompt."""
    returncode, report = run_check(tokenizer_copy(tmp_path, ours=False))
    assert returncode == 1
    assert not next(item for item in report if item["case"] == "en, no system")["conversation_equal"]
