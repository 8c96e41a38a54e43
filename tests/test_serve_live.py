"""One real vLLM server on the converted base: auth, the folder's chat template, stopping at <|im_end|>."""

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
