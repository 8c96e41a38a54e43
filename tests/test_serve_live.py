"""One real vLLM server on the converted base: auth, the folder's chat template, stopping at <|im_end|>,
and persona's gate in front of it (serve/gate.py: the key on every route, bounded requests)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from persona.paths import env_dir, model_dir
from persona.services import free_port, open_local, stop, wait_http
from persona.serve.server import ServeOptions, start

BASE = model_dir("smollm2-135m-instruct")
SERVE_ENV = env_dir("serve")
KEY = "live-test-key"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (SERVE_ENV / "bin" / "vllm").exists() or not (BASE / ".done").exists(),
    reason="needs the serve env and the converted base: run `persona setup`",
)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    opts = ServeOptions(model=BASE, served_name="smollm2-base", api_key=KEY, port=free_port())
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    proc = start(opts, SERVE_ENV, log)
    try:
        wait_http(opts.health_url, proc, log, timeout=300, what="vLLM")
        yield opts
    finally:
        stop(proc)


def post(opts: ServeOptions, path: str, body: dict, key: str | None = KEY) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"http://{opts.host}:{opts.port}{path}", json.dumps(body).encode(), headers)
    with open_local(request, timeout=120) as response:
        return json.load(response)


def test_requires_the_api_key(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(server, "/v1/models", {}, key=None)
    assert refused.value.code == 401


def test_renders_with_the_folder_chat_template(server):
    messages = [{"role": "user", "content": "What is 2+3?"}]
    tokens = post(server, "/tokenize", {"model": server.served_name, "messages": messages, "add_generation_prompt": True})["tokens"]
    prompt = post(server, "/detokenize", {"model": server.served_name, "tokens": tokens})["prompt"]
    # SmolLM2's own template adds its default system turn; no BOS in front.
    assert prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_chat_answers_and_stops_at_end_of_turn(server):
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key=KEY)
    reply = client.chat.completions.create(
        model=server.served_name,
        messages=[{"role": "user", "content": "What is 2+3?"}],
        max_tokens=200,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert reply.usage.completion_tokens < 200
    assert "5" in choice.message.content
    assert "<|im_end|>" not in choice.message.content


# ---------------------------------------------------------------------------- the gate (serve/gate.py)


def call(opts: ServeOptions, method: str, path: str, body: dict | None = None,
         key: str | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of one raw request; an error status is an answer here, not an exception."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{opts.host}:{opts.port}{path}", data, headers,
                                     method=method)
    try:
        with open_local(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def chat_body(opts: ServeOptions, **options) -> dict:
    return {"model": opts.served_name, "messages": [{"role": "user", "content": "What is 2+3?"}],
            "max_tokens": 8, "temperature": 0, **options}


def test_gate_refuses_what_vllm_alone_leaves_open(server):
    """Without a key vLLM 0.32 itself would run /invocations and answer the others."""
    keyless = [("POST", "/invocations", chat_body(server)),
               ("POST", "/tokenize", {"model": server.served_name, "prompt": "hi"}),
               ("POST", "/detokenize", {"model": server.served_name, "tokens": [1]}),
               ("GET", "/metrics", None), ("GET", "/version", None), ("GET", "/load", None)]
    for method, path, body in keyless:
        status, answer = call(server, method, path, body)
        assert status == 401, (path, answer)
        assert json.loads(answer)["error"]["code"] == 401, path
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert call(server, "GET", path)[0] == 404, path
        assert call(server, "GET", path, key=KEY)[0] == 404, path
    assert call(server, "GET", "/health")[0] == 200
    assert call(server, "GET", "/ping")[0] == 200
    foreign = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    status, _ = call(server, "OPTIONS", "/v1/chat/completions", headers=foreign)
    assert status == 400  # vLLM's CORS layer: no --allowed-origins, no cross-origin browser


def test_gate_lets_the_key_through(server):
    assert call(server, "GET", "/version", key=KEY)[0] == 200
    status, answer = call(server, "POST", "/invocations", chat_body(server), key=KEY)
    assert status == 200, answer
    assert json.loads(answer)["choices"][0]["message"]["content"]


def test_gate_refuses_out_of_bounds_requests_as_typed_openai_errors(server):
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    refusals = [dict(messages=messages, n=1000), dict(messages=messages, max_tokens=10**6),
                dict(messages=[{"role": "wizard", "content": "hi"}])]
    for options in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=server.served_name, **options)
        error = refused.value.response.json()["error"]
        assert refused.value.status_code == 400 and error["code"] == 400, error
        assert error["param"] in ("n", "max_tokens", "messages"), error
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=server.served_name, prompt="hi", n=1000)
    status, answer = call(server, "POST", "/invocations", chat_body(server, n=1000), key=KEY)
    assert status == 400, answer
    reply = client.chat.completions.create(model=server.served_name, messages=messages, n=2,
                                           max_tokens=4)
    assert len(reply.choices) == 2  # within the caps, and the server still answers


def test_gate_keeps_streaming_intact(server):
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "What is 2+3?"}]
    chunks = list(client.chat.completions.create(model=server.served_name, messages=messages,
                                                 max_tokens=24, temperature=0, stream=True))
    whole = client.chat.completions.create(model=server.served_name, messages=messages,
                                           max_tokens=24, temperature=0)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and streamed == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] \
        == [whole.choices[0].finish_reason]
