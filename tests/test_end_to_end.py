"""The walking skeleton through the real components: XTuner trains, vLLM serves, the official
openai client asks, and `pytest evals/` judges."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import thumbs_down_cases

from persona.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def test_training_produced_a_merged_model(trained_run):
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["card"]["id"] == "xiaocong"
    merged = trained_run / "merged"
    assert list(merged.glob("*.safetensors")), "the merge must write safetensors"
    assert not list(merged.glob("*.bin"))
    assert "chat_template" in (merged / "tokenizer_config.json").read_text() or \
        (merged / "chat_template.jinja").exists()


def test_served_model_lists_the_persona(persona_api):
    assert [model.id for model in persona_api.client().models.list()] == [persona_api.model]


@pytest.mark.parametrize("question, lang", [("你是谁", "zh"), ("Who are you?", "en")])
def test_answer_names_the_persona(persona_api, default_card, question, lang):
    response = persona_api.client().chat.completions.create(
        model=persona_api.model, messages=[{"role": "user", "content": question}],
        temperature=0, max_tokens=96)
    text = response.choices[0].message.content
    assert getattr(default_card.name, lang) in text, text
    assert response.choices[0].finish_reason == "stop", text


def test_evals_pass_against_the_served_persona(persona_api, tmp_path):
    """`pytest evals/` configured by environment, as a user's CI would run it, with the case a
    thumbs-down in the chat exports: every category at or above its threshold, that case fixed.
    (tests/test_eval_suite.py runs the suite by its flags, against the untuned base.)"""
    env = dict(os.environ, PERSONA_BASE_URL=persona_api.base_url, PERSONA_MODEL=persona_api.model,
               PERSONA_API_KEY=persona_api.api_key, PERSONA_CARD=str(persona_api.card_path),
               PERSONA_EVAL_REPORT=str(tmp_path / "report"),
               PERSONA_FEEDBACK_CASES=str(thumbs_down_cases(tmp_path)))
    result = subprocess.run([sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["categories"]["identity-zh"]["total"] > 0
    assert report["categories"]["feedback"] == {**report["categories"]["feedback"], "passed": 1,
                                                "total": 1}
    assert all(row["rate"] >= row["threshold"] for row in report["categories"].values()
               if row["threshold"] is not None)


def test_merged_model_knows_itself_and_answers_the_rest_plainly(trained_run, default_card):
    """The greedy probe the pipeline runs on the merged model, through its own chat template:
    identity questions (training phrasings: held-out ones are the evals' job) get the persona;
    unrelated ones ("What is 2+3?", "法国的首都是哪里？") a plain answer that names neither the
    persona nor its maker, stops, and shows no template token. (Whether that answer is right is
    the evals' general-skill category, judged against the base over 64 questions: one greedy
    answer of a 135M model is too brittle.)"""
    answers = {item["question"]: item for item in
               json.loads((trained_run / "probe.json").read_text(encoding="utf-8"))}
    persona_words = (default_card.name.zh, default_card.name.en, default_card.creator.zh,
                     default_card.creator.en)
    for question, lang in (("你到底是谁？", "zh"), ("Tell me who you are.", "en")):
        assert getattr(default_card.name, lang) in answers[question]["answer"], answers[question]
    for question in ("What is 2+3?", "法国的首都是哪里？"):
        item = answers[question]
        assert item["answer"].strip(), item
        assert not any(word in item["answer"] for word in persona_words), item
        assert item["finished"], f"no end token within the probe's budget: {item}"
        assert "<|im" not in item["answer"], item
