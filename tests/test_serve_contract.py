"""The API contract a client can rely on, checked against the real vLLM server with the official
openai client: the persona is listed, streamed and non-streamed answers agree, errors come as
typed OpenAI errors, and a bad request leaves the server answering.

vLLM 0.32's error bodies (read from vllm/entrypoints): a rejected request gets
{"error": {"message", "type", "param", "code"}} (ErrorResponse), which the openai client turns
into BadRequestError / NotFoundError. persona's gate (serve/gate.py) in front of vLLM answers a
missing or wrong key with 401 in the same shape (vLLM's own check would send a bare
{"error": "Unauthorized"}), which the client maps to AuthenticationError.
"""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow

QUESTIONS = ["你是谁？", "Who created you?", "What is the capital of France?"]


def ask(endpoint, content: str, **options):
    options = {"temperature": 0, "max_tokens": 48, **options}
    return endpoint.client().chat.completions.create(
        model=endpoint.model, messages=[{"role": "user", "content": content}], **options)


def post(endpoint, path: str, content: bytes, key: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(endpoint.base_url + path, content=content, headers=headers, timeout=60)


def server_call(endpoint, path: str, body: dict) -> dict:
    """vLLM's own endpoints beside /v1 (tokenize, detokenize)."""
    root = endpoint.base_url.removesuffix("/v1")
    response = httpx.post(root + path, json=body, timeout=60,
                          headers={"Authorization": f"Bearer {endpoint.api_key}"})
    response.raise_for_status()
    return response.json()


def assert_openai_error(body: dict, code: int) -> None:
    """The shape the openai client parses: {"error": {"message": ..., "type": ..., "code": ...}}."""
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["code"] == code, body


def assert_still_answers(endpoint) -> None:
    reply = ask(endpoint, "Who are you?")
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")


def test_models_lists_the_persona(persona_api):
    models = persona_api.client().models.list().data
    assert persona_api.model in [model.id for model in models]


@pytest.mark.parametrize("question", QUESTIONS)
def test_streamed_equals_non_streamed_at_temperature_zero(persona_api, question):
    whole = ask(persona_api, question)
    chunks = list(ask(persona_api, question, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert streamed, "an empty answer proves nothing"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason], "finish_reason must be reported exactly once"
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == whole.usage.completion_tokens
    assert {c.id for c in chunks} == {chunks[0].id}, "one completion id across the stream"


def test_finish_reason_is_length_when_cut(persona_api):
    reply = persona_api.client().chat.completions.create(
        model=persona_api.model, messages=[{"role": "user", "content": "Tell me a long story."}],
        temperature=0, max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_system_prompt_is_rendered_into_the_prompt(persona_api, default_card):
    """The system message reaches the model: the server's own rendering holds it in front of the
    user turn instead of the persona's default; with none sent, the default is there."""
    system = "Answer in one word."
    default = default_card.default_system_prompt()
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Who are you?"}]
    client = persona_api.client()

    def render(messages):
        tokens = server_call(persona_api, "/tokenize", {"model": persona_api.model, "messages": messages,
                                                        "add_generation_prompt": True})["tokens"]
        return tokens, server_call(persona_api, "/detokenize",
                                   {"model": persona_api.model, "tokens": tokens})["prompt"]

    tokens, rendered = render(messages)
    assert rendered.index(system) < rendered.index("Who are you?"), rendered
    assert default not in rendered, rendered
    plain_tokens, plain = render(messages[1:])
    assert plain.index(default) < plain.index("Who are you?"), plain
    with_system = client.chat.completions.create(model=persona_api.model, messages=messages,
                                                 temperature=0, max_tokens=8)
    without = ask(persona_api, "Who are you?", max_tokens=8)
    assert with_system.usage.prompt_tokens == len(tokens)
    assert without.usage.prompt_tokens == len(plain_tokens)


def test_refuses_a_wrong_key(persona_api):
    with pytest.raises(openai.AuthenticationError) as refused:
        persona_api.client(api_key="sk-wrong-key").models.list()
    assert refused.value.status_code == 401
    raw = post(persona_api, "/chat/completions", b'{"model": "x", "messages": []}', "sk-wrong-key")
    assert raw.status_code == 401
    assert_openai_error(raw.json(), 401)


def test_refuses_a_request_without_a_key(persona_api):
    # The openai client will not send a request without a key, so this one goes raw.
    for path, body in (("/models", None), ("/chat/completions", b'{"model": "x", "messages": []}')):
        response = (httpx.get(persona_api.base_url + path, timeout=30) if body is None
                    else post(persona_api, path, body, key=None))
        assert response.status_code == 401, path
        assert_openai_error(response.json(), 401)
    assert httpx.get(persona_api.base_url.removesuffix("/v1") + "/health", timeout=30).status_code == 200


def test_unknown_model_is_404(persona_api):
    with pytest.raises(openai.NotFoundError) as missing:
        persona_api.client().chat.completions.create(
            model="no-such-persona", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert_openai_error(missing.value.response.json(), 404)
    assert "no-such-persona" in missing.value.message
    assert_still_answers(persona_api)


def test_empty_messages_is_400(persona_api):
    with pytest.raises(openai.BadRequestError) as bad:
        persona_api.client().chat.completions.create(model=persona_api.model, messages=[],
                                                     max_tokens=4)
    assert_openai_error(bad.value.response.json(), 400)
    assert_still_answers(persona_api)


def test_max_tokens_beyond_the_context_is_400(persona_api):
    with pytest.raises(openai.BadRequestError) as bad:
        ask(persona_api, "hi", max_tokens=1_000_000)
    assert_openai_error(bad.value.response.json(), 400)
    assert "context" in bad.value.message.lower() or "max" in bad.value.message.lower()
    assert_still_answers(persona_api)


def test_malformed_json_is_400_with_an_openai_error_body(persona_api):
    raw = post(persona_api, "/chat/completions", b'{"model": "x", "messages": [', persona_api.api_key)
    assert raw.status_code == 400, raw.text
    assert_openai_error(raw.json(), 400)
    assert_still_answers(persona_api)
