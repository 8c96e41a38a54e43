"""The vLLM command line and environment, built without starting a server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persona.serve.host import CpuFit, core_list, fit
from persona.serve.server import ServeOptions, vllm_command, vllm_env

ENV = Path("/envs/serve")
MODEL = Path("/models/xiaocong")


def options(**overrides) -> ServeOptions:
    values = dict(model=MODEL, served_name="xiaocong", api_key="sk-test-123", port=8123)
    values.update(overrides)
    return ServeOptions(**values)


def flag_value(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} should appear once in {argv}"
    return argv[argv.index(flag) + 1]


def test_serves_the_model_folder_from_the_env_vllm():
    argv = vllm_command(options(), ENV)
    assert argv[:3] == [str(ENV / "bin" / "vllm"), "serve", str(MODEL)]


def test_names_host_port_and_model_id():
    argv = vllm_command(options(), ENV)
    assert flag_value(argv, "--served-model-name") == "xiaocong"
    assert flag_value(argv, "--host") == "127.0.0.1"
    assert flag_value(argv, "--port") == "8123"


def test_cpu_defaults():
    argv = vllm_command(options(), ENV)
    assert flag_value(argv, "--dtype") == "float32"
    assert flag_value(argv, "--max-model-len") == "2048"
    assert flag_value(argv, "--generation-config") == "auto"
    assert "--enforce-eager" in argv
    assert "--chat-template" not in argv


def test_optional_flags():
    argv = vllm_command(options(enforce_eager=False, chat_template=Path("/t/chat.jinja"), max_model_len=1024), ENV)
    assert "--enforce-eager" not in argv
    assert flag_value(argv, "--chat-template") == "/t/chat.jinja"
    assert flag_value(argv, "--max-model-len") == "1024"


def test_all_arguments_are_strings():
    assert all(isinstance(arg, str) for arg in vllm_command(options(chat_template=Path("/c.jinja")), ENV))


def test_api_key_goes_by_environment_not_argv():
    opts = options()
    assert not any("sk-test-123" in arg for arg in vllm_command(opts, ENV))
    assert "--api-key" not in vllm_command(opts, ENV)
    assert vllm_env(opts, ENV)["VLLM_API_KEY"] == "sk-test-123"


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    for name, value in {"PATH": "/usr/bin", "PYTHONHOME": "/elsewhere", "KEEP": "1"}.items():
        monkeypatch.setenv(name, value)
    env = vllm_env(options(cpu=CpuFit("0-3", 0, 2)), ENV)
    assert env["PATH"].split(":")[:2] == [str(ENV / "bin"), "/usr/bin"]
    assert "PYTHONHOME" not in env
    assert env["KEEP"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-3"
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "vllm-cache")
    assert env["HF_HUB_OFFLINE"] == "1"


def test_urls():
    opts = options()
    assert opts.base_url == "http://127.0.0.1:8123/v1"
    assert opts.health_url == "http://127.0.0.1:8123/health"


def test_cpu_settings_default_to_what_fits_this_machine():
    env = vllm_env(options(), ENV)
    fitted = fit()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == fitted.threads_bind
    assert env["VLLM_CPU_KVCACHE_SPACE"] == str(fitted.kv_cache_gib)


@pytest.mark.parametrize("cpus, expected", [
    ([0], "0"), ([0, 1], "0-1"), ([0, 1, 2, 5], "0-2,5"), ([3, 1, 2, 7, 8], "1-3,7-8"),
])
def test_core_list_syntax(cpus, expected):
    assert core_list(cpus) == expected


@pytest.mark.parametrize("mem_gib, kv", [(2, 1), (15.9, 1), (23, 2), (64, 4), (512, 4)])
def test_kv_cache_takes_an_eighth_of_available_memory_within_bounds(mem_gib, kv):
    assert fit([0, 1], mem_gib).kv_cache_gib == kv


def test_threads_use_every_usable_core():
    assert fit([0, 1], 23) == CpuFit("0-1", 0, 2)
    assert fit([4, 5, 6, 7], 23).threads_bind == "4-7"


def test_cuda_drops_cpu_settings_and_splits_over_gpus(monkeypatch):
    opts = options(device="cuda", tensor_parallel_size=4)
    argv = vllm_command(opts, ENV)
    assert flag_value(argv, "--tensor-parallel-size") == "4"
    assert flag_value(argv, "--dtype") == "auto"
    for name in [name for name in os.environ if name.startswith("VLLM_CPU_")]:
        monkeypatch.delenv(name)  # only what vllm_env sets counts here
    env = vllm_env(opts, ENV)
    assert not any(name.startswith("VLLM_CPU_") for name in env)


def test_cpu_has_no_tensor_parallel_flag_and_refuses_more_than_one():
    assert "--tensor-parallel-size" not in vllm_command(options(), ENV)
    with pytest.raises(ValueError, match="CUDA"):
        options(tensor_parallel_size=2)


def test_lora_modules_are_named_and_enable_lora():
    opts = options(served_name="smollm2", lora_modules=(("lingxi", Path("/r/lingxi/adapter")),
                                                        ("xiaocong", Path("/r/xiaocong/adapter"))))
    argv = vllm_command(opts, ENV)
    assert "--enable-lora" in argv
    assert flag_value(argv, "--max-lora-rank") == "16"
    assert flag_value(argv, "--max-loras") == "2"
    at = argv.index("--lora-modules")
    assert argv[at + 1:at + 3] == ["lingxi=/r/lingxi/adapter", "xiaocong=/r/xiaocong/adapter"]
    assert "--enable-lora" not in vllm_command(options(), ENV)


def test_served_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        options(lora_modules=(("xiaocong", Path("/a")),))


def test_engine_knobs():
    argv = vllm_command(options(max_num_seqs=32, prefix_caching=False, stream_interval=4,
                                chunked_prefill=False), ENV)
    assert flag_value(argv, "--max-num-seqs") == "32"
    assert flag_value(argv, "--stream-interval") == "4"
    assert "--no-enable-prefix-caching" in argv and "--no-enable-chunked-prefill" in argv
    assert "--enable-prefix-caching" in vllm_command(options(prefix_caching=True), ENV)
    assert "--enable-chunked-prefill" in vllm_command(options(chunked_prefill=True), ENV)
    default = vllm_command(options(), ENV)
    assert "--max-num-seqs" not in default and "--stream-interval" not in default
    assert not any("prefix-caching" in a or "chunked-prefill" in a for a in default)


def test_cli_refuses_tensor_parallel_on_cpu_before_training(tmp_path, monkeypatch, capsys):
    from persona.cli import main

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERSONA_DEVICE", "cpu")
    assert main(["serve", "--tensor-parallel", "2"]) == 2
    assert "needs CUDA" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_a_generated_key_is_printed_once_and_a_chosen_one_never(monkeypatch, capsys):
    from persona import commands
    from persona.card import load_card

    card = load_card(commands.DEFAULT_CARD)
    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    commands._announce(card, "http://127.0.0.1:8000/v1", "sk-persona-generated", None)
    assert capsys.readouterr().out.count("sk-persona-generated") == 1
    monkeypatch.setenv("PERSONA_API_KEY", "sk-chosen-by-user")
    commands._announce(card, "http://127.0.0.1:8000/v1", "sk-chosen-by-user", None)
    assert "sk-chosen-by-user" not in capsys.readouterr().out


def test_a_live_server_announces_its_personas_and_its_generated_key_once(monkeypatch, capsys):
    from persona import commands_live
    from persona.serve import live

    entry = live.ServedPersona(run="r", adapter="a", since="now")
    record = live.LiveServer(port=8000, base="b", base_path="b", base_name="b", template="t",
                             max_lora_rank=16, adapter_root="r",
                             personas={"xiaocong": entry, "lingxi": entry})
    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    commands_live._announce("http://127.0.0.1:8000/v1", "sk-persona-generated", record)
    out = capsys.readouterr().out
    assert out.count("sk-persona-generated") == 1 and "xiaocong, lingxi" in out
    monkeypatch.setenv("PERSONA_API_KEY", "sk-chosen-by-user")
    commands_live._announce("http://127.0.0.1:8000/v1", "sk-chosen-by-user", record)
    assert "sk-chosen-by-user" not in capsys.readouterr().out


@pytest.mark.parametrize("base, card_says, flagged", [
    ("smollm2-135m-instruct", False, False),
    ("internlm2.5-7b-chat", False, True),  # the preset declares it
    ("someone/some-model", False, False),  # a hub id or folder: only when the card says so
    ("someone/some-model", True, True),
])
def test_vllm_runs_the_models_own_code_only_when_declared(tmp_path, monkeypatch, base, card_says,
                                                          flagged):
    from persona import commands, envs
    from persona.card import parse_card
    from persona.serve import server
    from persona.services import Children

    card = parse_card({"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
                       "creator": {"zh": "大佬", "en": "Maker"}, "base": base,
                       "trust_remote_code": card_says})
    started = []
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    monkeypatch.setattr(envs, "ensure", lambda name: ENV)
    monkeypatch.setattr(envs, "is_ready", lambda name: True)  # the env's lock, without an env
    monkeypatch.setattr(commands, "ensure_free", lambda *a: None)
    monkeypatch.setattr(commands, "wait_http", lambda *a, **k: 0.0)
    monkeypatch.setattr(server, "start", lambda opts, prefix, log: started.append(
        vllm_command(opts, prefix)))
    commands._start_api(card, MODEL, "127.0.0.1", 8123, "sk-test", Children())
    assert ("--trust-remote-code" in started[0]) is flagged
    assert ("--trust-remote-code" in vllm_command(options(trust_remote_code=flagged), ENV)) is flagged
