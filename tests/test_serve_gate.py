"""serve/gate.py, the one gate in front of vLLM, driven in front of a small Starlette app laid
out like vLLM 0.32's (its routes, its CORS layer with no allowed origin), through Starlette's
TestClient and raw ASGI calls; how the launcher wires it in (serve/server.py); and the CLI's
refusal to serve a public host on a generated key. The real server: tests/test_serve_live.py."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from persona.paths import REPO_ROOT, env_dir
from persona.serve import gate
from persona.serve.gate import Limits, PersonaGate
from persona.serve.host import CpuFit
from persona.serve.server import ServeOptions, vllm_command, vllm_env

KEY = "sk-gate-test-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMITS = Limits(max_choices=4, max_tokens=2048)
GENERATION = ["/v1/chat/completions", "/v1/completions", "/invocations"]
# vLLM routes that answer without a key when vLLM's own check is all there is.
UNGUARDED_BY_VLLM = [("POST", "/invocations"), ("POST", "/tokenize"), ("POST", "/detokenize"),
                     ("POST", "/pooling"), ("GET", "/metrics"), ("GET", "/load"),
                     ("GET", "/version"), ("POST", "/ping"), ("HEAD", "/health")]
GUARDED_BY_VLLM = [("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                   ("POST", "/v1/completions")]
DOCS = ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def echo(request: Request) -> Response:
    """What the app received, byte for byte."""
    return Response(await request.body(), media_type="application/json")


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def vllm_like_app(allowed_origins: tuple[str, ...] = ()) -> Starlette:
    posts = [*GENERATION, "/tokenize", "/detokenize", "/pooling"]
    gets = ["/v1/models", "/metrics", "/load", "/version", *DOCS]
    app = Starlette(routes=[Route("/health", ok, methods=["GET", "HEAD"]),
                            Route("/ping", ok, methods=["GET", "POST"]),
                            *(Route(path, echo, methods=["POST"]) for path in posts),
                            *(Route(path, ok) for path in gets)])
    # As vLLM's register.py adds it: --allowed-origins defaults to none.
    app.add_middleware(CORSMiddleware, allow_origins=list(allowed_origins), allow_methods=["*"],
                       allow_headers=["*"])
    return app


def gated(app: Starlette | None = None) -> TestClient:
    app = app or vllm_like_app()
    app.add_middleware(PersonaGate, api_key=KEY, limits=LIMITS)  # last added: outermost
    return TestClient(app)


@pytest.fixture()
def client() -> TestClient:
    return gated()


def assert_refused(response, status: int, param: str | None = None) -> dict:
    """The OpenAI-style body vLLM's own errors have, which the openai client parses."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status and error["message"] and error["type"]
    assert error["param"] == param
    return error


# ---------------------------------------------------------------------------- which routes


@pytest.mark.parametrize("method, path", UNGUARDED_BY_VLLM + GUARDED_BY_VLLM)
def test_every_route_but_the_probes_needs_the_key(client, method, path):
    refused = client.request(method, path, json=CHAT if method == "POST" else None)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    if method != "HEAD":
        assert_refused(refused, 401)
    assert client.request(method, path, json=CHAT if method == "POST" else None,
                          headers=AUTH).status_code == 200


def test_only_get_health_and_get_ping_answer_without_a_key(client):
    assert client.get("/health").status_code == 200
    assert client.get("/ping").status_code == 200
    assert client.post("/ping").status_code == 401  # SageMaker's POST /ping is not a probe
    assert client.get("/health/").status_code == 401  # no near misses


@pytest.mark.parametrize("path", DOCS)
def test_the_api_docs_are_404_for_everyone(client, path):
    assert_refused(client.get(path), 404)
    assert_refused(client.get(path, headers=AUTH), 404)


def test_an_unknown_path_needs_the_key_then_is_404(client):
    assert client.get("/no-such-route").status_code == 401
    assert client.get("/no-such-route", headers=AUTH).status_code == 404


@pytest.mark.parametrize("authorization", [
    None, "", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Bearer  {KEY}", f"Basic {KEY}", KEY,
    f"Token {KEY}", "Bearer ",
])
def test_a_wrong_or_malformed_key_is_refused(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    assert client.post("/invocations", json=CHAT, headers=headers).status_code == 401


def test_the_scheme_is_case_insensitive_as_in_vllm(client):
    assert client.get("/version", headers={"Authorization": f"bearer {KEY}"}).status_code == 200
    assert client.get("/version").status_code == 401


def test_the_key_is_compared_in_constant_time_over_digests(client, monkeypatch):
    compared = []

    def spy(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(gate.secrets, "compare_digest", spy)
    assert client.get("/load", headers={"Authorization": "Bearer a-much-shorter-key"}).status_code == 401
    assert client.get("/load", headers=AUTH).status_code == 200
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)


# ---------------------------------------------------------------------------- CORS


def preflight(client: TestClient, origin: str, path: str = "/v1/chat/completions"):
    return client.options(path, headers={"Origin": origin,
                                         "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "authorization"})


def test_a_foreign_preflight_is_refused_and_other_options_need_the_key(client):
    """A browser sends no key on a preflight: it goes on to vLLM's CORS layer, which allows no
    origin unless --allowed-origins names it. Any other OPTIONS is a request like the rest."""
    refused = preflight(client, "https://evil.example")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert client.options("/v1/chat/completions").status_code == 401
    assert client.options("/tokenize", headers={"Origin": "https://evil.example"}).status_code == 401


def test_an_origin_vllm_was_told_to_allow_still_gets_its_preflight_and_needs_the_key():
    client = gated(vllm_like_app(allowed_origins=("https://chat.example",)))
    allowed = preflight(client, "https://chat.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    assert preflight(client, "https://evil.example").status_code == 400
    assert client.post("/v1/chat/completions", json=CHAT,
                       headers={"Origin": "https://chat.example"}).status_code == 401


# ---------------------------------------------------------------------------- bodies


BAD_BODIES = [
    ({**CHAT, "n": 1000}, "n"),
    ({**CHAT, "n": 5}, "n"),
    ({**CHAT, "n": "1000"}, "n"),  # pydantic would read the string as 1000
    ({**CHAT, "n": 1e9}, "n"),
    ({**CHAT, "max_tokens": 2049}, "max_tokens"),
    ({**CHAT, "max_tokens": 1_000_000}, "max_tokens"),
    ({**CHAT, "max_completion_tokens": 4096}, "max_completion_tokens"),
    ({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "function",
                                                                     "content": "b"}]}, "messages"),
    ({"model": "m", "messages": [{"content": "no role"}]}, "messages"),
    ({"model": "m", "messages": [{"role": 7, "content": "hi"}]}, "messages"),
]


@pytest.mark.parametrize("path", GENERATION)
@pytest.mark.parametrize("body, param", BAD_BODIES)
def test_out_of_bounds_requests_are_400_before_the_model(client, path, body, param):
    error = assert_refused(client.post(path, json=body, headers=AUTH), 400, param)
    assert param in error["message"] or "role" in error["message"]


@pytest.mark.parametrize("path", GENERATION)
@pytest.mark.parametrize("raw", [b'{"model": "x", "messages": [', b"not json", b"\xff\xfe\x00",
                                 b"[1, 2]", b'"a string"', b""])
def test_a_body_that_is_no_json_object_is_400_in_the_same_shape(client, path, raw):
    response = client.post(path, content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert_refused(response, 400)


@pytest.mark.parametrize("path", GENERATION)
def test_requests_within_the_caps_reach_the_app_byte_for_byte(client, path):
    body = json.dumps({"model": "m", "n": 4, "max_tokens": 2048, "max_completion_tokens": 2048,
                       "messages": [{"role": role, "content": "x"} for role in gate.ROLES],
                       "note": "ünïcode 你好"}, ensure_ascii=False).encode()
    answer = client.post(path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.content == body
    assert client.post(path, content=body).status_code == 401


def test_other_routes_keep_their_bodies_unread(client):
    """Only generation bodies are checked: /tokenize gets its body as sent, even bad JSON."""
    assert client.post("/tokenize", content=b"{not json", headers=AUTH).content == b"{not json"
    assert client.post("/tokenize", content=b"{not json").status_code == 401


def test_a_body_over_the_limit_is_413(client, monkeypatch):
    monkeypatch.setattr(gate, "MAX_BODY_BYTES", 64)
    big = json.dumps({**CHAT, "pad": "x" * 100}).encode()
    assert_refused(client.post("/v1/completions", content=big, headers=AUTH), 413)
    assert client.post("/v1/completions", json=CHAT, headers=AUTH).status_code == 200


def test_max_tokens_is_left_to_vllm_when_no_cap_is_set():
    app = vllm_like_app()
    app.add_middleware(PersonaGate, api_key=KEY, limits=Limits(max_choices=4, max_tokens=None))
    client = TestClient(app)
    assert client.post("/invocations", json={**CHAT, "max_tokens": 10**6}, headers=AUTH).status_code == 200
    assert client.post("/invocations", json={**CHAT, "n": 5}, headers=AUTH).status_code == 400


# ---------------------------------------------------------------------------- raw ASGI


def http_scope(path: str, method: str = "POST", key: str | None = KEY) -> dict:
    headers = [(b"content-type", b"application/json")]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": headers, "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000)}


def drive(app, scope: dict, events: list[dict]) -> list[dict]:
    """Run one ASGI call: the client's events in order, then http.disconnect; what was sent."""
    queue, sent = list(events), []

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def chunks_of(body: bytes, size: int) -> list[dict]:
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    return [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)]


class Recorder:
    """An ASGI app that reads the body to its end, then listens once more (as a streaming
    response does, for the client leaving), and streams three chunks back."""

    def __init__(self):
        self.body, self.after = b"", None

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.after = await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def test_a_chunked_body_is_read_whole_and_replayed_and_the_stream_passes_through():
    body = json.dumps({**CHAT, "stream": True, "messages": CHAT["messages"] * 20}).encode()
    inner = Recorder()
    sent = drive(PersonaGate(inner, api_key=KEY, limits=LIMITS), http_scope("/v1/chat/completions"),
                 chunks_of(body, 37))
    assert inner.body == body
    assert inner.after == {"type": "http.disconnect"}  # the client's own events follow the body
    assert [m.get("body") for m in sent[1:]] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n",
                                                  b"data: [DONE]\n\n"]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, True, False]
    refused = drive(PersonaGate(Recorder(), api_key=KEY, limits=LIMITS),
                    http_scope("/v1/chat/completions", key=None), chunks_of(body, 37))
    assert refused[0]["status"] == 401


def test_a_bad_cap_in_the_last_chunk_is_still_seen():
    body = json.dumps({**CHAT, "pad": "x" * 200, "n": 9}).encode()
    inner = Recorder()
    sent = drive(PersonaGate(inner, api_key=KEY, limits=LIMITS), http_scope("/invocations"),
                 chunks_of(body, 16))
    assert sent[0]["status"] == 400 and inner.body == b""


def test_a_client_that_leaves_mid_body_reaches_nothing():
    inner = Recorder()
    sent = drive(PersonaGate(inner, api_key=KEY, limits=LIMITS), http_scope("/invocations"),
                 [{"type": "http.request", "body": b'{"model": ', "more_body": True}])
    assert sent == [] and inner.body == b"" and inner.after is None


def test_root_path_is_stripped_as_vllm_strips_it():
    scope = {**http_scope("/api/version", method="GET", key=None), "root_path": "/api"}
    assert drive(PersonaGate(Recorder(), api_key=KEY, limits=LIMITS), scope, [])[0]["status"] == 401
    scope = {**http_scope("/api/health", method="GET", key=None), "root_path": "/api"}
    inner = Recorder()
    drive(PersonaGate(inner, api_key=KEY, limits=LIMITS), scope, [{"type": "http.request"}])
    assert inner.after is not None  # /health reached the app


def test_a_websocket_without_the_key_is_closed_before_the_app():
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    def websocket(key):
        return {**http_scope("/v1/realtime", method="GET", key=key), "type": "websocket"}

    sent = drive(PersonaGate(app, api_key=KEY, limits=LIMITS), websocket(None), [])
    assert sent == [{"type": "websocket.close", "code": 1008}] and reached == []
    drive(PersonaGate(app, api_key=KEY, limits=LIMITS), websocket(KEY), [])
    assert reached == ["/v1/realtime"]


# ---------------------------------------------------------------------------- how vLLM builds it


def test_vllm_builds_it_from_the_environment(monkeypatch):
    """vLLM calls PersonaGate(app): the key from VLLM_API_KEY, the caps from the launcher's
    variables; without a key it refuses to start rather than serve an open API."""
    monkeypatch.setenv(gate.KEY_ENV, KEY)
    monkeypatch.setenv(gate.MAX_TOKENS_ENV, "100")
    monkeypatch.setenv(gate.MAX_CHOICES_ENV, "2")
    app = vllm_like_app()
    app.add_middleware(PersonaGate)
    client = TestClient(app)
    assert client.post("/invocations", json={**CHAT, "max_tokens": 101}, headers=AUTH).status_code == 400
    assert client.post("/invocations", json={**CHAT, "n": 3}, headers=AUTH).status_code == 400
    assert client.post("/invocations", json={**CHAT, "n": 2, "max_tokens": 100}, headers=AUTH).status_code == 200
    monkeypatch.delenv(gate.MAX_CHOICES_ENV)
    assert PersonaGate(ok).limits == Limits(gate.DEFAULT_MAX_CHOICES, 100)
    monkeypatch.setenv(gate.MAX_CHOICES_ENV, "four")
    with pytest.raises(RuntimeError, match=gate.MAX_CHOICES_ENV):
        PersonaGate(ok)
    monkeypatch.setenv(gate.KEY_ENV, "")
    with pytest.raises(RuntimeError, match=gate.KEY_ENV):
        PersonaGate(ok)


def test_the_middleware_path_names_the_gate():
    module, _, name = gate.MIDDLEWARE.rpartition(".")
    assert getattr(importlib.import_module(module), name) is PersonaGate


def serve_options(**changes) -> ServeOptions:
    return ServeOptions(model=Path("/models/m"), served_name="m", api_key=KEY, cpu=CpuFit("0", 0, 1),
                        **changes)


def test_the_launcher_puts_the_gate_in_front_with_its_caps():
    argv = vllm_command(serve_options(max_model_len=1024), Path("/envs/serve"))
    assert argv[argv.index("--middleware") + 1] == gate.MIDDLEWARE
    env = vllm_env(serve_options(max_model_len=1024), Path("/envs/serve"))
    assert env["PYTHONPATH"].split(":")[0] == str(REPO_ROOT)
    assert env[gate.MAX_TOKENS_ENV] == "1024"
    assert env[gate.MAX_CHOICES_ENV] == str(gate.DEFAULT_MAX_CHOICES)
    assert env[gate.KEY_ENV] == KEY


def test_the_serve_env_imports_the_gate_from_this_checkout(tmp_path):
    """The serve env has no persona installed: vllm_env's PYTHONPATH is what lets vLLM's
    `--middleware` import resolve there (from any working directory)."""
    python = env_dir("serve") / "bin" / "python"
    if not python.exists():
        pytest.skip("the serve env is not built (`persona setup`)")
    module, _, name = gate.MIDDLEWARE.rpartition(".")
    probe = (f"import importlib, starlette; gate = getattr(importlib.import_module({module!r}), "
             f"{name!r}); print(gate.__module__)")
    result = subprocess.run([str(python), "-c", probe], env=vllm_env(serve_options(), env_dir("serve")),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == module, result.stderr


# ---------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("command", ["serve", "up"])
def test_a_public_host_needs_a_key_the_user_chose(command, tmp_path, monkeypatch, capsys):
    from persona.cli import main

    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    monkeypatch.setenv("PERSONA_UI_PASSWORD", "pw")  # `up`: the chat's own check passes
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    assert main([command, "--host", "0.0.0.0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0" in err and "PERSONA_API_KEY" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists()


def test_the_key_check_passes_on_loopback_or_with_a_chosen_key(monkeypatch):
    from persona.services import KeyRequired, check_api_exposure

    monkeypatch.delenv("PERSONA_API_KEY", raising=False)
    for host in ("127.0.0.1", "localhost", "::1"):
        check_api_exposure(host)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        with pytest.raises(KeyRequired, match="PERSONA_API_KEY"):
            check_api_exposure(host)
    monkeypatch.setenv("PERSONA_API_KEY", "")
    with pytest.raises(KeyRequired):
        check_api_exposure("0.0.0.0")
    monkeypatch.setenv("PERSONA_API_KEY", "sk-chosen")
    check_api_exposure("0.0.0.0")
