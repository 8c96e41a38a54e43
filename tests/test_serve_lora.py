"""Several personas on one server, for real: the session's run served as a LoRA adapter on its
base (as `persona serve --adapters` does), under two names, answers as the merged model does."""

from __future__ import annotations

import httpx
import pytest

from conftest import Endpoint, free_port
from persona import envs
from persona.run_folder import RunFolder
from persona.services import stop, wait_http
from persona.serve.adapters import plan
from persona.serve.server import ServeOptions, start

pytestmark = pytest.mark.slow

QUESTIONS = ["你是谁？", "Who created you?"]


@pytest.fixture(scope="module")
def adapter_api(trained_run, default_card, tmp_path_factory):
    run = RunFolder(trained_run)
    served = plan([default_card], [run], run.read_manifest()["base_model"])
    alias = default_card.id + "-alias"
    options = ServeOptions(model=served.base, served_name=served.base_name, api_key="sk-lora-test",
                           port=free_port(), chat_template=served.chat_template,
                           lora_modules=served.adapters + ((alias, served.adapters[0][1]),),
                           max_lora_rank=served.max_lora_rank)
    log = tmp_path_factory.mktemp("lora") / "vllm.log"
    process = start(options, envs.ensure("serve"), log)
    try:
        wait_http(options.health_url, process, log, timeout=600, what="vLLM with LoRA")
        yield Endpoint(options.base_url, options.api_key, default_card.id, None), alias, served
    finally:
        stop(process)


def answer(endpoint: Endpoint, model: str, question: str, system: str | None = None) -> str:
    # The shared template injects no persona's default system prompt: clients send it.
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}]
    return endpoint.client().chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=48).choices[0].message.content


def test_lists_the_base_and_every_adapter(adapter_api):
    endpoint, alias, served = adapter_api
    listed = [m.id for m in endpoint.client().models.list().data]
    assert sorted(listed) == sorted([served.base_name, endpoint.model, alias])


@pytest.mark.parametrize("question", QUESTIONS)
def test_adapter_answers_as_the_merged_model(adapter_api, persona_api, default_card, question):
    endpoint, alias, _ = adapter_api
    system = default_card.default_system_prompt()
    merged = answer(persona_api, persona_api.model, question)  # its template injects `system`
    assert answer(endpoint, endpoint.model, question, system) == merged
    assert answer(endpoint, alias, question, system) == merged


def test_the_model_name_picks_the_adapter(adapter_api, default_card):
    endpoint, _, served = adapter_api
    system = default_card.default_system_prompt()
    assert default_card.name.en in answer(endpoint, endpoint.model, "Who are you?", system)
    assert default_card.name.en not in answer(endpoint, served.base_name, "Who are you?")
    unknown = httpx.post(endpoint.base_url + "/chat/completions", timeout=60,
                         headers={"Authorization": f"Bearer {endpoint.api_key}"},
                         json={"model": "no-such-persona", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 404
