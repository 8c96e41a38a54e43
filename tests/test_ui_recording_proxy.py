"""The recording proxy the real-server browser test puts in front of vLLM (here: the fake)."""

import openai
import pytest

from fake_openai import FakeOpenAI, answer_for, pieces
from recording_proxy import RecordingProxy


@pytest.fixture
def fake():
    with FakeOpenAI(api_key="k", token_delay_s=0.0) as server:
        yield server


def test_forwards_streams_and_records(fake):
    with RecordingProxy(fake.base_url) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        assert [m.id for m in client.models.list().data] == [fake.model]
        messages = [{"role": "user", "content": "你是谁"}]
        stream = client.chat.completions.create(model=fake.model, messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == answer_for(messages)
        assert proxy.chat_requests() == [fake.requests[-1]]
        assert proxy.chat_requests()[0]["messages"] == messages
        assert proxy.streamed_texts() == [text]
        assert proxy.streamed_pieces() == [pieces(text)]


def test_passes_errors_through(fake):
    fake.mode = "error"
    with RecordingProxy(fake.base_url) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
        client = openai.OpenAI(base_url=proxy.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.InternalServerError, match="fake internal error"):
            client.chat.completions.create(model=fake.model, messages=[], stream=True)
