"""The vLLM command line and environment, built without starting a server."""

from __future__ import annotations

from pathlib import Path

from serve.server import ServeOptions, vllm_command, vllm_env

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
    assert vllm_env(opts, ENV, base={})["VLLM_API_KEY"] == "sk-test-123"


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    env = vllm_env(options(kv_cache_gib=2), ENV, base={"PATH": "/usr/bin", "PYTHONHOME": "/elsewhere", "KEEP": "1"})
    assert env["PATH"].split(":")[:2] == [str(ENV / "bin"), "/usr/bin"]
    assert "PYTHONHOME" not in env
    assert env["KEEP"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "vllm-cache")
    assert env["HF_HUB_OFFLINE"] == "1"


def test_urls():
    opts = options()
    assert opts.base_url == "http://127.0.0.1:8123/v1"
    assert opts.health_url == "http://127.0.0.1:8123/health"
