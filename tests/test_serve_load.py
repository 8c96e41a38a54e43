"""A bounded load on loopback: a fixed number of chat requests at a fixed concurrency against the
real vLLM server, behind persona's gate (serve/gate.py) as `persona serve` starts it. Nothing may
be lost and every response must be whole; one test mixes in malformed requests, each of which
must get a 4xx with a message while the good ones around it still get whole answers. The
latencies are reported (printed), never asserted: speed belongs to benchmarks/serve_bench.py.

PERSONA_LOAD_REQUESTS and PERSONA_LOAD_CONCURRENCY change the size (default 200 at 16).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass

import httpx
import pytest

from persona.stats import percentile

pytestmark = pytest.mark.slow

REQUESTS = int(os.environ.get("PERSONA_LOAD_REQUESTS", "200"))
CONCURRENCY = int(os.environ.get("PERSONA_LOAD_CONCURRENCY", "16"))
MAX_TOKENS = 32
MALFORMED_EVERY = 10  # one request in ten is malformed (request 5, 15, 25, ...)
QUESTIONS = ["你是谁？", "Who are you?", "Who created you?", "What is the capital of France?",
             "请介绍一下你自己。", "Name three colours.", "What is 2+3?", "你叫什么名字？"]


def prompts() -> list[str]:
    """Distinct prompts of different lengths, so each answer can be tied to its request."""
    return [f"{QUESTIONS[i % len(QUESTIONS)]} (request {i}{'!' * (i % 7)})" for i in range(REQUESTS)]


def expected_prompt_tokens(endpoint, texts: list[str]) -> list[int]:
    """What the server itself counts for each prompt, asked one by one before the load."""
    root = endpoint.base_url.removesuffix("/v1")
    with httpx.Client(headers={"Authorization": f"Bearer {endpoint.api_key}"}, timeout=60) as http:
        return [len(http.post(root + "/tokenize", json={
            "model": endpoint.model, "messages": [{"role": "user", "content": text}],
            "add_generation_prompt": True}).raise_for_status().json()["tokens"]) for text in texts]


def check_answer(i: int, reply: dict, model: str, prompt_tokens: int) -> None:
    """A whole answer to request i's own prompt (the server's token count of it matches)."""
    (choice,) = reply["choices"]
    assert reply["model"] == model, i
    assert choice["finish_reason"] in ("stop", "length"), (i, choice["finish_reason"])
    assert choice["message"]["content"], (i, "empty answer")
    assert reply["usage"]["prompt_tokens"] == prompt_tokens, (i, "answer to another prompt?")
    tokens = reply["usage"]["completion_tokens"]
    assert 0 < tokens <= MAX_TOKENS, (i, tokens)
    assert choice["finish_reason"] == "stop" or tokens == MAX_TOKENS, (i, tokens)


def summary(what: str, latencies: list[float]) -> str:
    return (f"{what} latency p50 {percentile(latencies, 0.5):.2f} s, "
            f"p95 {percentile(latencies, 0.95):.2f} s, mean {statistics.mean(latencies):.2f} s")


async def _load(endpoint, texts: list[str]):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=0,
                         timeout=300)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int):
        async with gate:
            started = time.perf_counter()
            reply = await client.chat.completions.create(
                model=endpoint.model, messages=[{"role": "user", "content": texts[i]}],
                temperature=0, max_tokens=MAX_TOKENS)
            return i, time.perf_counter() - started, reply

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(len(texts))), return_exceptions=True)
    wall = time.perf_counter() - started
    await client.close()
    return results, wall


def test_bounded_load_loses_nothing(persona_api, capsys):
    texts = prompts()
    expected = expected_prompt_tokens(persona_api, texts)

    results, wall = asyncio.run(_load(persona_api, texts))

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {REQUESTS} requests failed, first: {failures[0]!r}"
    assert sorted(i for i, _, _ in results) == list(range(REQUESTS)), "a request was lost"
    assert len({reply.id for _, _, reply in results}) == REQUESTS, "completion ids must be unique"
    for i, _, reply in results:
        check_answer(i, reply.model_dump(), persona_api.model, expected[i])

    latencies = [seconds for _, seconds, _ in results]
    tokens = sum(reply.usage.completion_tokens for _, _, reply in results)
    with capsys.disabled():
        print(f"\nload: {REQUESTS} requests at concurrency {CONCURRENCY}, max_tokens {MAX_TOKENS}: "
              f"all complete in {wall:.1f} s; {summary('', latencies).lstrip()}; "
              f"{tokens / wall:.0f} output tokens/s")


# ---------------------------------------------------------------- malformed requests in the load


@dataclass(frozen=True)
class Malformed:
    """A request the server must refuse: what it is, its raw body, the status it must get, and
    the field the refusal names (None where the refusal names none)."""

    what: str
    body: bytes
    status: int
    param: str | None = None
    key: str | None = ""  # "" the right key, None no Authorization header, else that key
    # refused by the gate alone: vLLM 0.32 runs any n, takes custom roles and clamps a max_tokens
    # above the context (read in its source), so without the gate these would not be a 400
    gate_only: bool = False


def malformed_requests(model: str, context: int) -> list[Malformed]:
    def chat(**fields) -> bytes:
        return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 8, "temperature": 0, **fields}).encode()

    return [
        Malformed("bad JSON", chat()[:-1], 400),
        Malformed("unknown model", chat(model="no-such-model"), 404, "model"),
        Malformed("max_tokens above the context", chat(max_tokens=context + 1), 400, "max_tokens",
                  gate_only=True),
        Malformed("empty messages", chat(messages=[]), 400),
        Malformed("unknown role", chat(messages=[{"role": "wizard", "content": "hi"}]), 400,
                  "messages", gate_only=True),
        Malformed("n=1000", chat(n=1000), 400, "n", gate_only=True),
        Malformed("no key", chat(), 401, key=None),
        Malformed("wrong key", chat(), 401, key="sk-wrong"),
        Malformed("body not an object", b"[]", 400),
        Malformed("no messages", json.dumps({"model": model, "max_tokens": 8}).encode(), 400),
    ]


def plan(model: str, context: int) -> dict[int, Malformed]:
    """Which requests are malformed: one in MALFORMED_EVERY, spread through the run, the kinds
    taken in turn."""
    kinds = malformed_requests(model, context)
    return {i: kinds[(i // MALFORMED_EVERY) % len(kinds)]
            for i in range(MALFORMED_EVERY // 2, REQUESTS, MALFORMED_EVERY)}


async def _mixed_load(endpoint, texts: list[str], bad: dict[int, Malformed]):
    """Every request as raw HTTP (a bad body or key cannot go through the OpenAI client):
    (index, seconds, status, parsed body or the raw bytes)."""
    url = endpoint.base_url + "/chat/completions"
    gate = asyncio.Semaphore(CONCURRENCY)

    def request(i: int) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        key = bad[i].key if i in bad else ""
        if key is not None:
            headers["Authorization"] = f"Bearer {key or endpoint.api_key}"
        if i in bad:
            return bad[i].body, headers
        return json.dumps({"model": endpoint.model, "temperature": 0, "max_tokens": MAX_TOKENS,
                           "messages": [{"role": "user", "content": texts[i]}]}).encode(), headers

    async with httpx.AsyncClient(timeout=300, trust_env=False) as http:  # loopback: no proxy
        async def one(i: int):
            body, headers = request(i)
            async with gate:
                started = time.perf_counter()
                response = await http.post(url, content=body, headers=headers)
                seconds = time.perf_counter() - started
            try:
                return i, seconds, response.status_code, response.json()
            except ValueError:
                return i, seconds, response.status_code, response.content

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(len(texts))), return_exceptions=True)
        return results, time.perf_counter() - started


def check_refusal(i: int, case: Malformed, status: int, body) -> None:
    """The status the case must get, and one error shape: {"error": {"message": ...}}."""
    assert status == case.status, (i, case.what, status, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), (i, case.what, body)
    message = body["error"].get("message")
    assert isinstance(message, str) and message.strip(), (i, case.what, body)
    if case.param is not None:
        assert body["error"].get("param") == case.param, (i, case.what, body)


def test_malformed_requests_in_the_load_get_4xx_and_the_rest_whole_answers(persona_api, capsys):
    root = persona_api.base_url.removesuffix("/v1")
    key = {"Authorization": f"Bearer {persona_api.api_key}"}
    (served,) = httpx.get(persona_api.base_url + "/models", headers=key, timeout=60,
                          trust_env=False).raise_for_status().json()["data"]
    context = served["max_model_len"]  # what the gate caps max_tokens at (2048 as persona serves)
    texts = prompts()
    bad = plan(persona_api.model, context)
    assert any(case.gate_only for case in bad.values()), "the gate must have something to refuse"
    expected = expected_prompt_tokens(persona_api, texts)

    results, wall = asyncio.run(_mixed_load(persona_api, texts, bad))

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {REQUESTS} got no answer, first: {failures[0]!r}"
    assert len(results) == REQUESTS, "a response is missing"
    assert sorted(i for i, *_ in results) == list(range(REQUESTS)), "a request was lost"
    problems = []  # every request is judged, so one run shows all that went wrong
    for i, _, status, body in results:
        try:
            if i in bad:
                check_refusal(i, bad[i], status, body)
            else:
                assert status == 200 and isinstance(body, dict), (i, status, body)
                check_answer(i, body, persona_api.model, expected[i])
        except AssertionError as error:
            problems.append(f"request {i} ({bad[i].what if i in bad else 'good'}): {error}")
    assert not problems, f"{len(problems)} of {REQUESTS} wrong:\n" + "\n".join(problems[:30])
    good = [(i, seconds, body) for i, seconds, status, body in results if i not in bad]
    assert len({body["id"] for _, _, body in good}) == len(good), "completion ids must be unique"

    # afterwards: a plain request answers normally, and the probe is up
    reply = persona_api.client(timeout=120).chat.completions.create(
        model=persona_api.model, messages=[{"role": "user", "content": texts[0]}],
        temperature=0, max_tokens=MAX_TOKENS)
    check_answer(0, reply.model_dump(), persona_api.model, expected[0])
    assert httpx.get(root + "/health", timeout=30, trust_env=False).status_code == 200

    tokens = sum(body["usage"]["completion_tokens"] for _, _, body in good)
    refused = [seconds for i, seconds, *_ in results if i in bad]
    kinds = sorted({case.what for case in bad.values()})
    with capsys.disabled():
        print(f"\nload with malformed requests: {REQUESTS} requests at concurrency {CONCURRENCY}, "
              f"max_tokens {MAX_TOKENS}, {len(bad)} malformed ({len(kinds)} kinds: "
              f"{', '.join(kinds)}): all answered in {wall:.1f} s; "
              f"{summary(f'{len(good)} complete answers,', [s for _, s, _ in good])}; "
              f"{summary(f'{len(bad)} refusals,', refused)}; {tokens / wall:.0f} output tokens/s")
