"""Streaming one answer over real HTTP (the fake server) and the messages shown for each failure."""

import asyncio

import openai
import pytest

from fake_openai import FakeOpenAI, answer_for
from persona.ui.llm import Reply, StreamDropped, describe_error, make_client, served_models, stream_reply
from persona.ui.settings import UISettings

QUESTION = [{"role": "user", "content": "你是谁"}]


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(api_key="test-key", token_delay_s=0.0) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.mode = "echo"
    server.extra_models = []
    server.max_model_len = 2048
    server.requests.clear()
    return server


def settings_for(fake: FakeOpenAI, **overrides) -> UISettings:
    values = dict(base_url=fake.base_url, model=fake.model, api_key="test-key")
    values.update(overrides)
    return UISettings(**values)


def run(fake: FakeOpenAI, messages=QUESTION, max_tokens=64, **overrides):
    """(reply, tokens, error) of one streamed answer."""
    settings = settings_for(fake, **overrides)
    tokens: list[str] = []
    reply = Reply()

    async def on_token(token: str) -> None:
        tokens.append(token)

    async def main():
        client = make_client(settings)
        try:
            await stream_reply(client, settings.model, messages, max_tokens=max_tokens,
                               temperature=0.2, on_token=on_token, reply=reply)
        except Exception as error:  # the caller inspects it
            return error
        finally:
            await client.close()

    error = asyncio.run(main())
    return reply, tokens, error


def test_answer_streams_in_pieces_and_sends_max_tokens(fake):
    reply, tokens, error = run(fake)
    assert error is None
    assert reply.text == answer_for(QUESTION) and reply.finish_reason == "stop"
    assert len(tokens) > 3 and "".join(tokens) == reply.text
    sent = fake.requests[-1]
    assert sent["max_tokens"] == 64 and sent["stream"] is True and sent["messages"] == QUESTION


def test_http_500_is_described_with_the_servers_message(fake):
    fake.mode = "error"
    reply, tokens, error = run(fake)
    assert isinstance(error, openai.InternalServerError) and reply.text == "" and tokens == []
    text = describe_error(error, fake.base_url)
    assert "HTTP 500" in text and "fake internal error" in text


def test_dropped_connection_keeps_the_partial_text(fake):
    fake.mode = "drop"
    reply, tokens, error = run(fake)
    full = answer_for(QUESTION)
    assert isinstance(error, StreamDropped)
    assert reply.text and full.startswith(reply.text) and reply.text != full
    assert "cut off" in describe_error(error, fake.base_url)


def test_stream_ending_without_finish_reason_counts_as_dropped(fake):
    fake.mode = "truncate"
    reply, _, error = run(fake)
    assert isinstance(error, StreamDropped) and "before finishing" in error.reason
    assert reply.text and reply.finish_reason is None


def test_wrong_key_and_wrong_model_say_what_to_check(fake):
    _, _, error = run(fake, api_key="wrong")
    assert isinstance(error, openai.AuthenticationError)
    assert "PERSONA_API_KEY" in describe_error(error, fake.base_url)
    _, _, error = run(fake, model="no-such-model")
    assert isinstance(error, openai.NotFoundError)
    assert "PERSONA_MODEL" in describe_error(error, fake.base_url)


def test_server_down_then_back():
    with FakeOpenAI(api_key="test-key", token_delay_s=0.0) as fake:
        fake.stop()
        _, _, error = run(fake)
        assert isinstance(error, openai.APIConnectionError)
        assert "Cannot reach" in describe_error(error, fake.base_url)
        fake.start()
        reply, _, error = run(fake)
        assert error is None and reply.text == answer_for(QUESTION)


def test_unknown_errors_still_get_a_message():
    text = describe_error(RuntimeError("boom"), "http://127.0.0.1:1/v1")
    assert "RuntimeError" in text and "boom" in text


def list_models(fake: FakeOpenAI, **overrides):
    async def main():
        client = make_client(settings_for(fake, **overrides))
        try:
            return await served_models(client)
        finally:
            await client.close()

    return asyncio.run(main())


def test_served_models_in_the_servers_order(fake):
    fake.extra_models = ["lingxi", "mystery-7b"]
    assert list(list_models(fake)) == [fake.model, "lingxi", "mystery-7b"]
    with pytest.raises(openai.AuthenticationError):
        list_models(fake, api_key="wrong")


def test_the_request_is_fitted_into_the_served_context(fake):
    """The slider and PERSONA_MAX_TOKENS go far beyond a 2048-token server: read max_model_len
    from /v1/models as vLLM lists it, and send what fits instead of an HTTP 400."""
    from fake_openai import prompt_tokens
    from persona.ui.history import commit_turn, fit_request, request_messages
    fake.max_model_len = 512
    fake.extra_models = ["lingxi"]
    context = list_models(fake)
    assert context == {fake.model: 512, "lingxi": 512}
    history = []
    for index in range(6):
        history = commit_turn(history, f"question {index}", f"answer {index} " + "词" * 20)
    asked = request_messages(history, "你是谁", "You are Xiaocong.")
    _, _, error = run(fake, messages=asked, max_tokens=4096)  # as today: the whole slider
    assert isinstance(error, openai.BadRequestError)
    assert "shorten it" in describe_error(error, fake.base_url)
    messages, max_tokens = fit_request(history, "你是谁", "You are Xiaocong.", 4096,
                                       context[fake.model])
    reply, _, error = run(fake, messages=messages, max_tokens=max_tokens)
    assert error is None and reply.text == answer_for(messages)
    sent = fake.requests[-1]
    assert sent["max_tokens"] == max_tokens < 512
    assert prompt_tokens(sent["messages"]) + sent["max_tokens"] <= 512
    assert sent["messages"][0]["role"] == "system" and sent["messages"][-1]["content"] == "你是谁"
