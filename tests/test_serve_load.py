"""A bounded load on loopback: a fixed number of chat requests at a fixed concurrency against the
real vLLM server. Nothing may be lost and every response must be whole; the latencies are
reported (printed), never asserted: speed belongs to benchmarks/serve_bench.py.

PERSONA_LOAD_REQUESTS and PERSONA_LOAD_CONCURRENCY change the size (default 200 at 16).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx
import pytest

from persona.stats import percentile

pytestmark = pytest.mark.slow

REQUESTS = int(os.environ.get("PERSONA_LOAD_REQUESTS", "200"))
CONCURRENCY = int(os.environ.get("PERSONA_LOAD_CONCURRENCY", "16"))
MAX_TOKENS = 32
QUESTIONS = ["你是谁？", "Who are you?", "Who created you?", "What is the capital of France?",
             "请介绍一下你自己。", "Name three colours.", "What is 2+3?", "你叫什么名字？"]


def prompts() -> list[str]:
    """Distinct prompts of different lengths, so each answer can be tied to its request."""
    return [f"{QUESTIONS[i % len(QUESTIONS)]} (request {i}{'!' * (i % 7)})" for i in range(REQUESTS)]


async def _load(endpoint, texts: list[str], expected_prompt_tokens: list[int]):
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
    # What the server itself counts for each prompt, asked one by one before the load.
    root = persona_api.base_url.removesuffix("/v1")
    with httpx.Client(headers={"Authorization": f"Bearer {persona_api.api_key}"}, timeout=60) as http:
        expected = [len(http.post(root + "/tokenize", json={
            "model": persona_api.model, "messages": [{"role": "user", "content": text}],
            "add_generation_prompt": True}).raise_for_status().json()["tokens"]) for text in texts]

    results, wall = asyncio.run(_load(persona_api, texts, expected))

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {REQUESTS} requests failed, first: {failures[0]!r}"
    assert sorted(i for i, _, _ in results) == list(range(REQUESTS)), "a request was lost"
    assert len({reply.id for _, _, reply in results}) == REQUESTS, "completion ids must be unique"
    for i, _, reply in results:
        (choice,) = reply.choices
        assert reply.model == persona_api.model
        assert choice.finish_reason in ("stop", "length"), (i, choice.finish_reason)
        assert choice.message.content, (i, "empty answer")
        assert reply.usage.prompt_tokens == expected[i], (i, "answer to another prompt?")
        tokens = reply.usage.completion_tokens
        assert 0 < tokens <= MAX_TOKENS and (choice.finish_reason == "stop" or tokens == MAX_TOKENS), i

    latencies = [seconds for _, seconds, _ in results]
    tokens = sum(reply.usage.completion_tokens for _, _, reply in results)
    with capsys.disabled():
        print(f"\nload: {REQUESTS} requests at concurrency {CONCURRENCY}, max_tokens {MAX_TOKENS}: "
              f"all complete in {wall:.1f} s; latency p50 {percentile(latencies, 0.5):.2f} s, "
              f"p95 {percentile(latencies, 0.95):.2f} s, mean {statistics.mean(latencies):.2f} s; "
              f"{tokens / wall:.0f} output tokens/s")
