"""A live server's pieces without a server: the gate's adapter-load check (driven through a
Starlette app laid out like vLLM's runtime-LoRA routes), the record and its snapshots
(serve/live.py), the launcher's flags, and the CLI's refusals before anything starts. The real
server: tests/test_serve_live_add.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from persona.cli import main
from persona.run_folder import RunFolder
from persona.serve import gate, live
from persona.serve.gate import PersonaGate
from persona.serve.server import ServeOptions, vllm_command, vllm_env

KEY = "sk-live-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


def gated(root: Path | None) -> TestClient:
    paths = ["/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/adapters", "/adapters/x"]
    app = Starlette(routes=[Route(path, echo, methods=["POST", "DELETE"]) for path in paths])
    app.add_middleware(PersonaGate, api_key=KEY, adapter_root=str(root) if root else None)
    return TestClient(app)


def load(client: TestClient, path: str, headers: dict = AUTH):
    return client.post("/v1/load_lora_adapter", headers=headers,
                       content=json.dumps({"lora_name": "p", "lora_path": path}))


def test_an_adapter_under_the_runs_folder_loads_and_its_body_reaches_vllm(tmp_path):
    (tmp_path / ".served" / "p-1").mkdir(parents=True)
    response = load(gated(tmp_path), str(tmp_path / ".served" / "p-1"))
    assert response.status_code == 200
    assert response.json() == {"lora_name": "p", "lora_path": str(tmp_path / ".served" / "p-1")}


@pytest.mark.parametrize("escape", ["outside", "dotdot", "symlink", "prefix"])
def test_an_adapter_from_anywhere_else_is_refused(tmp_path, escape):
    root, outside = tmp_path / "runs", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (tmp_path / "runs-evil").mkdir()
    (root / "link").symlink_to(outside)
    path = {"outside": outside, "dotdot": root / ".." / "elsewhere", "symlink": root / "link",
            "prefix": tmp_path / "runs-evil"}[escape]
    response = load(gated(root), str(path))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["param"] == "lora_path" and f"under {root}" in error["message"]


def test_no_key_no_root_and_bad_bodies_are_refused(tmp_path):
    assert load(gated(tmp_path), str(tmp_path), headers={}).status_code == 401
    assert load(gated(None), str(tmp_path)).status_code == 403  # not a live server
    client = gated(tmp_path)
    for body, status in [(b"{", 400), (b"[]", 400), (b'{"lora_name": "p"}', 400),
                         (b'{"lora_name": "p", "lora_path": 3}', 400)]:
        assert client.post("/v1/load_lora_adapter", headers=AUTH, content=body).status_code == status


@pytest.mark.parametrize("method, path", [("POST", "/adapters"), ("DELETE", "/adapters/x")])
def test_sagemakers_adapter_routes_are_closed_even_with_the_key(tmp_path, method, path):
    response = gated(tmp_path).request(method, path, headers=AUTH,
                                       content=json.dumps({"name": "p", "src": str(tmp_path)}))
    assert response.status_code == 404


def test_a_live_server_turns_on_runtime_loading_and_names_its_root(tmp_path):
    options = ServeOptions(model=tmp_path, served_name="base", api_key=KEY,
                           adapter_root=tmp_path / "runs")
    argv = vllm_command(options, tmp_path)
    assert argv[argv.index("--max-loras") + 1] == "4" and "--lora-modules" not in argv
    env = vllm_env(options, tmp_path)
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env[gate.ADAPTER_ROOT_ENV] == str(tmp_path / "runs")
    fixed = ServeOptions(model=tmp_path, served_name="base", api_key=KEY,
                         lora_modules=(("a", tmp_path), ("b", tmp_path)))
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in vllm_env(fixed, tmp_path)
    assert gate.ADAPTER_ROOT_ENV not in vllm_env(fixed, tmp_path)


def adapter_run(root: Path, weights: bytes = b"w") -> RunFolder:
    run = RunFolder(root)
    run.adapter.mkdir(parents=True)
    (run.adapter / "adapter_config.json").write_text('{"r": 16}')
    (run.adapter / "adapter_model.safetensors").write_bytes(weights)
    return run


def record(port: int, **personas: str) -> live.LiveServer:
    return live.LiveServer(port=port, base="b", base_path="b", base_name="b", template="t",
                           max_lora_rank=16, adapter_root="r", personas={
                               pid: live.ServedPersona(run="r", adapter=path, since="s")
                               for pid, path in personas.items()})


def test_snapshots_are_named_by_content_and_released_once_no_record_lists_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    runs = tmp_path / "runs"
    first = live.snapshot(adapter_run(tmp_path / "a"), "p", runs)
    assert first.parent == runs / live.SNAPSHOTS and first.name.startswith("p-")
    assert (first / "adapter_model.safetensors").read_bytes() == b"w"
    assert live.snapshot(adapter_run(tmp_path / "b"), "p", runs) == first  # same weights
    retrained = live.snapshot(adapter_run(tmp_path / "c", b"w2"), "p", runs)
    assert retrained != first
    live.write(record(8000, p=str(first)))
    live.write(record(8001, q=str(first)))
    live.release(first)
    assert first.is_dir()  # two servers list it
    live.write(record(8001))
    live.release(first)
    assert first.is_dir()
    live.write(record(8000, p=str(retrained)))
    live.release(first)
    assert not first.is_dir() and retrained.is_dir()
    live.release(tmp_path / "a" / "adapter")  # a run's own adapter: never deleted
    assert (tmp_path / "a" / "adapter").is_dir()


def test_the_record_is_written_whole_and_an_unreadable_one_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    assert live.read(8000) is None
    with pytest.raises(live.LiveError, match="no persona server was started on port 8000"):
        with live.editing(8000, "add"):
            pass
    live.write(record(8000))
    with live.editing(8000, "add") as server:
        server.personas["p"] = live.ServedPersona(run="r", adapter="a", since="s")
    assert live.read(8000).personas["p"].adapter == "a"
    with pytest.raises(RuntimeError):
        with live.editing(8000, "add") as server:
            server.personas.clear()
            raise RuntimeError("failed half way")
    assert "p" in live.read(8000).personas  # nothing written
    live.record_path(8000).write_text('{"port": 8000')
    with pytest.raises(live.LiveError, match="cannot be read .* delete it and start the server"):
        live.read(8000)


def test_the_commands_refuse_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    assert main(["add", "--server", "http://127.0.0.1:8999/v1"]) == 2
    assert "set PERSONA_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("PERSONA_API_KEY", KEY)
    for argv, says in [
        (["add"], "no persona server was started on port 8000"),
        (["remove", "xiaocong", "--server", "localhost:8000"], "give the API's URL"),
        (["list", "--server", "http://127.0.0.1:8999/v1"], "no persona server was started"),
        (["serve", "--adapters", ","], "no card given"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
    live.write(record(8999))
    assert main(["list", "--server", "http://127.0.0.1:8999/v1"]) == 2  # nothing listens there
    assert "no server answers at http://127.0.0.1:8999/v1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "envs").exists()


def test_a_live_server_on_a_busy_port_leaves_the_record_there_alone(tmp_path, monkeypatch, capsys):
    import socket

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        live.write(record(port, p="a"))
        before = live.record_path(port).read_bytes()
        assert main(["serve", "--base", "smollm2-135m-instruct", "--port", str(port)]) == 2
    assert "--port" in capsys.readouterr().err
    assert live.record_path(port).read_bytes() == before
    assert not (tmp_path / "envs").exists() and not (tmp_path / "models").exists()


def test_a_base_restart_names_the_base_apart_from_the_personas_that_return(tmp_path, monkeypatch):
    """`serve --base` brings back the port's personas: the base's served id must not be one
    of theirs (a persona named like the base's folder would otherwise shadow it)."""
    from persona import commands, commands_live
    from persona.services import free_port

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    base = tmp_path / "mybase"
    base.mkdir()
    (base / "config.json").write_text("{}")
    adapter = adapter_run(tmp_path / "run").adapter
    port = free_port()
    live.write(live.LiveServer(
        port=port, base=str(base), base_path=str(base), base_name="mybase-base", template="t",
        max_lora_rank=16, adapter_root=str(tmp_path / "runs"),
        personas={"mybase": live.ServedPersona(run="r", adapter=str(adapter), since="s")}))

    class Started(Exception):
        pass

    def start_api(*args, **kwargs):
        raise Started

    monkeypatch.setattr(commands, "_start_api", start_api)
    with pytest.raises(Started):
        commands_live.serve_live([], str(base), port, "127.0.0.1", False, 1)
    written = live.read(port)
    assert list(written.personas) == ["mybase"] and written.base_name == "mybase-base"
