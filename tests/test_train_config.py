"""The generated XTuner config: the card and the base preset decide it, every documented option
overrides it, and it reads like XTuner's hand-written stock configs (same sections and names)."""

import ast
import json
import subprocess
from pathlib import Path

import pytest

from persona import envs
from persona.paths import REPO_ROOT
from persona.train.options import FULL_LR, TrainOptions, resolve_options
from persona.train.xtuner_config import render_config


def render(options, **kwargs):
    return render_config("xiaocong", "/models/base", "/run/data/train.json", options,
                         ["你到底是谁？", "Who are you?"], **kwargs)


def assignments(text):
    """Top-level `name = literal` settings of a config."""
    values = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                values[node.targets[0].id] = ast.unparse(node.value)
    return values


def test_default_is_qlora_chatml_with_resumable_checkpoints():
    text = render(resolve_options("smollm2-135m-instruct", {}))
    settings = assignments(text)
    # the names XTuner's stock configs use, in PART 1
    for name in ("pretrained_model_name_or_path", "data_path", "prompt_template", "max_length",
                 "pack_to_max_length", "batch_size", "accumulative_counts", "max_epochs", "lr",
                 "save_steps", "save_total_limit", "evaluation_inputs"):
        assert name in settings, name
    assert "PART 1  Settings" in text and "PART 5  Runtime" in text
    assert settings["prompt_template"] == "PROMPT_TEMPLATE.qwen_chat"
    assert settings["method"] == "qlora" and "bnb_4bit_quant_type" in text
    assert "type=LoraConfig" in text and "r=16," in text
    assert settings["save_steps"] == 20 and settings["save_total_limit"] == 2
    assert "save_optimizer=True" in text and "save_param_scheduler=True" in text
    assert settings["evaluation_inputs"] == ["你到底是谁？", "Who are you?"]  # readable, not \\u escapes


@pytest.mark.parametrize("method", ["qlora", "lora", "full"])
def test_methods(method):
    options = resolve_options("smollm2-135m-instruct", {"method": method})
    text = render(options)
    assert ("quantization_config" in text) == (method == "qlora")
    assert ("type=LoraConfig" in text) == (method != "full")
    assert ("lora=None" in text) == (method == "full")
    assert assignments(text)["lr"] == (FULL_LR if method == "full" else TrainOptions().lr)


def test_every_documented_option_overrides():
    given = {"method": "lora", "epochs": 3, "lr": 1e-4, "lora_r": 8, "max_length": 512,
             "pack_to_max_length": False}
    settings = assignments(text := render(resolve_options("smollm2-135m-instruct", given)))
    assert settings["max_epochs"] == 3 and settings["lr"] == 1e-4
    assert settings["max_length"] == 512 and settings["pack_to_max_length"] is False
    assert "r=8," in text
    steps = assignments(render(resolve_options("smollm2-135m-instruct", {"max_steps": 7})))
    assert steps["max_iters"] == 7


@pytest.mark.parametrize("base, template, lr", [
    ("smollm2-135m-instruct", "qwen_chat", 2e-3),
    ("qwen2.5-0.5b-instruct", "qwen_chat", 1e-3),
    ("qwen2.5-7b-instruct", "qwen_chat", 2e-4),
    ("internlm2.5-7b-chat", "internlm2_chat", 2e-4),
    ("/some/local/folder", "qwen_chat", 2e-3),  # not a preset: ChatML and the defaults
])
def test_base_preset_decides_template_and_defaults(base, template, lr):
    options = resolve_options(base, {})
    assert options.prompt_template == template and options.lr == lr
    assert f"PROMPT_TEMPLATE.{template}" in render(options)


@pytest.mark.parametrize("given, message", [
    ({"method": "dora"}, "use qlora, lora, full"),
    ({"lr": 0}, "lr 0"),
    ({"epochs": 0}, "epochs 0"),
    ({"max_length": -1}, "max_length -1"),
])
def test_bad_options_are_refused_with_the_field(given, message):
    with pytest.raises(ValueError, match=message):
        resolve_options("smollm2-135m-instruct", given)


@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_mmengine_reads_every_method(tmp_path):
    """XTuner's own loader (mmengine's Config.fromfile) accepts the generated file."""
    paths = {}
    for method in ("qlora", "lora", "full"):
        paths[method] = tmp_path / f"{method}.py"
        paths[method].write_text(render(resolve_options("internlm2.5-7b-chat", {"method": method})))
    code = ("import json, sys; from mmengine.config import Config; "
            "print(json.dumps({p: [Config.fromfile(p).model.lora is None, "
            "Config.fromfile(p).prompt_template['SUFFIX']] for p in sys.argv[1:]}))")
    env = envs.command_env("train")
    result = subprocess.run([str(envs.python("train")), "-c", code, *map(str, paths.values())],
                            capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {str(paths["qlora"]): [False, "<|im_end|>"],
                      str(paths["lora"]): [False, "<|im_end|>"],
                      str(paths["full"]): [True, "<|im_end|>"]}


@pytest.mark.parametrize("base, card_says, trusted", [
    ("smollm2-135m-instruct", False, False),
    ("internlm2.5-7b-chat", False, True),  # the preset declares it: its tokenizer is its own code
    ("someone/some-model", False, False),  # a hub id runs no code of its own ...
    ("someone/some-model", True, True),  # ... unless the card says so
    ("/models/local", True, True),
])
def test_remote_code_reaches_the_config_only_when_declared(tmp_path, base, card_says, trusted):
    from persona.card import parse_card
    from persona.run_folder import RunFolder, write_json
    from persona.train.step_data import configure

    card = parse_card({"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
                       "creator": {"zh": "大佬", "en": "Maker"}, "base": base,
                       "trust_remote_code": card_says})
    run = RunFolder(tmp_path)
    run.claim(card.id)
    run.data.mkdir(parents=True)
    write_json(run.heldout, [{"lang": lang, "kind": "who", "question": "?"} for lang in ("zh", "en")])
    configure(run, card, "/models/base", resolve_options(base, {}))
    text = run.config.read_text(encoding="utf-8")
    assert assignments(text)["trust_remote_code"] is trusted
    assert "trust_remote_code=True" not in text  # both loaders take the one setting
    assert text.count("trust_remote_code=trust_remote_code") == 2


@pytest.mark.parametrize("targets", ["all", "attention"])
def test_lora_targets(targets):
    """attention: peft's regex picks exactly the q, k, v and output projections (Llama/Qwen and
    InternLM2 names), never an MLP; all: XTuner's own choice, every linear layer."""
    import re

    text = render(resolve_options("smollm2-135m-instruct", {"lora_targets": targets}))
    found = re.search(r'target_modules=r"(.*)"', text)
    assert bool(found) == (targets == "attention")
    ast.parse(text)
    if found:
        pattern = re.compile(found.group(1).replace("\\\\", "\\"))
        llama = [f"model.layers.3.self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        internlm2 = ["model.layers.0.attention.wqkv", "model.layers.0.attention.wo"]
        mlps = ["model.layers.3.mlp.gate_proj", "model.layers.3.mlp.up_proj",
                "model.layers.3.mlp.down_proj", "model.layers.0.feed_forward.w1", "lm_head"]
        assert all(pattern.fullmatch(name) for name in llama + internlm2)
        assert not any(pattern.fullmatch(name) for name in mlps)


def test_unknown_lora_targets_are_refused():
    with pytest.raises(ValueError, match="lora_targets 'mlp': use all or attention"):
        resolve_options("smollm2-135m-instruct", {"lora_targets": "mlp"})


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_a_warmup_too_short_to_rise_is_no_warmup(tmp_path):
    # One epoch of N packed sequences: with warmup_ratio 0.05, mmengine's plain LinearLR fails
    # under 20 (a warmup of 0 iterations) and under 40 holds the rate at 1e-5 of itself for the
    # whole run; the generated schedule trains at the full rate there, and warms up above.
    config = tmp_path / "xtuner_config.py"
    config.write_text(render(TrainOptions()), encoding="utf-8")
    result = subprocess.run([str(envs.python("train")),
                             str(REPO_ROOT / "tests" / "train_env" / "schedule_check.py"),
                             str(config)], capture_output=True, text=True,
                            env=envs.command_env("train"), cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "end should be larger than begin" in report["10"]["stock_peak"]
    assert report["30"]["stock_peak"] < 1e-4  # the stall this schedule is for
    for short in ("10", "30"):
        assert report[short]["first"] == 1.0 and report[short]["peak"] == 1.0, report
    for long in ("60", "520"):
        assert report[long]["first"] < 1e-4 and report[long]["peak"] > 0.99, report


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_cpu_bfloat16_autocasts_the_body_and_keeps_the_head_and_weights_float32(tmp_path):
    # Both generated CPU configs, built by mmengine: float32 as before; bfloat16 multiplies in
    # bfloat16 (its gradient within bfloat16's rounding of float32's) while the output head,
    # the loss, the weights and the update stay float32. The pipeline trains float32 unless
    # asked, and takes bfloat16 only where the CPU multiplies it natively (/proc/cpuinfo, read
    # here apart from torch).
    paths = []
    for precision in ("float32", "bfloat16"):
        paths.append(tmp_path / f"{precision}.py")
        paths[-1].write_text(render(TrainOptions(precision=precision)), encoding="utf-8")
    result = subprocess.run([str(envs.python("train")),
                             str(REPO_ROOT / "tests" / "train_env" / "autocast_check.py"),
                             *map(str, paths)], capture_output=True, text=True,
                            env=envs.command_env("train"), cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["float32"] == {"wrapper": "OptimWrapper", "hidden": "float32",
                                 "logits": "float32", "loss": "float32", "weight": "float32",
                                 "moved": True}
    assert report["bfloat16"] == {"wrapper": "CpuAutocastOptimWrapper", "hidden": "bfloat16",
                                  "logits": "float32", "loss": "float32", "weight": "float32",
                                  "moved": True}
    assert 0 < report["grad_relative_error"] < 0.02, report  # bfloat16 keeps 8 bits: ~0.4 %
    flags = Path("/proc/cpuinfo").read_text().split()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert report["native"] == native
    assert report["pipeline"] == {
        "none": "float32", "--precision auto": "float32", "--precision float32": "float32",
        "--precision bfloat16": "bfloat16" if native else (
            "--precision bfloat16: this CPU has no native bfloat16 products (AVX512-BF16 or "
            "AMX), so torch would emulate them, slower than float32; leave --precision out")}


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_the_cpu_loss_over_labelled_positions_equals_the_full_loss():
    # The lean model's loss takes only labelled positions through the head: on the CPU (float32)
    # its loss and gradient equal the full-logits cross-entropy's in float64 to 1e-5, on a batch
    # with an unlabelled prompt and an unlabelled context turn.
    result = subprocess.run([str(envs.python("train")), "-m", "persona.train.lean_model_check",
                             "--device", "cpu"], capture_output=True, text=True,
                            env=envs.command_env("train"), cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "lean_model_check: cpu:" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_the_cpu_lora_dropout_keeps_nn_dropouts_contract():
    # train/cpu_dropout.py on a million elements: kept with probability 1 - p (binomial SD
    # 0.0002; 7 SD allowed), the kept scaled by 1 / (1 - p), so the mean is unchanged; no
    # correlation between neighbours or between lanes of one random word (SD 0.001, 0.002);
    # seeded; identity in eval mode and at p 0; swapped for every LoRA dropout of a peft model,
    # its weights untouched.
    result = subprocess.run([str(envs.python("train")),
                             str(REPO_ROOT / "tests" / "train_env" / "dropout_check.py")],
                            capture_output=True, text=True, env=envs.command_env("train"),
                            cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    dropout, swap = report["dropout"], report["swap"]
    assert abs(dropout["p"] - 0.05) < 1e-4
    assert abs(dropout["kept_share"] - (1 - dropout["p"])) < 0.0015, dropout
    assert dropout["kept_values"] == [round(2 / (1 - dropout["p"]), 6)], dropout
    assert abs(dropout["mean"] - 2) < 0.003, dropout
    assert abs(dropout["neighbour_correlation"]) < 0.005 and abs(dropout["lane_correlation"]) < 0.01, dropout
    for check in ("same_seed_same_mask", "grad_is_mask_over_keep", "eval_is_identity", "p0_is_identity"):
        assert dropout[check], (check, dropout)
    assert dropout["odd_shape"] == [3, 5, 7]
    # 7 LoRA targets x 2 layers of the tiny model; a second swap finds none left
    assert swap == {"swapped": 14, "dropout_kinds": ["CpuDropout"], "again": 0,
                    "state_dict_unchanged": True, "loss_finite": True}, swap
