"""General-skill replay: the bundled prompts, the filters on the base's answers, the mixing."""

from __future__ import annotations

import json

import pytest

from persona import base_models
from persona.evals.cases import CONTROLS
from persona.identity.heldout import HELDOUT_QUESTIONS
from persona.identity.phrasings import training_questions
from persona.train.dataset import build_conversations
from persona.train.general_prompts import ALL, FACTS, split_prompts
from persona.train.plain_qa import PLAIN_QA
from persona.identity.names import identity_of
from persona.train import replay
from persona.train.replay import looping, replay_turns, rewrite_identity, right, usable


def test_at_least_200_replay_prompts_in_both_languages_and_a_disjoint_heldout():
    train, heldout = split_prompts()
    assert len(train) >= 200
    assert {item["lang"] for item in train} == {"en", "zh"} == {item["lang"] for item in heldout}
    prompts = [item["prompt"] for item in ALL]
    assert len(prompts) == len(set(prompts))
    assert not {i["prompt"] for i in train} & {i["prompt"] for i in heldout}


def test_replay_prompts_are_no_identity_plain_or_eval_question():
    prompts = {item["prompt"] for item in ALL}
    plain = {question for pairs in PLAIN_QA.values() for question, _ in pairs}
    identity = {item["question"] for item in [*training_questions(), *HELDOUT_QUESTIONS]}
    controls = {question for _, question in CONTROLS}
    assert not prompts & plain
    assert not prompts & identity
    assert not prompts & controls


def test_looping_catches_repeated_chunks_only():
    assert looping([5, 6, 7] * 3)
    assert looping([1, 2, 3, 4] + [9, 9] * 3)
    assert not looping(list(range(40)))
    assert not looping([5, 6, 7] * 2)


def _answer(text: str, finished: bool = True) -> dict:
    return {"lang": "en", "prompt": "What is 3 + 4?", "answer": text, "finished": finished}


def test_usable_drops_unfinished_empty_looping_and_template_text():
    assert usable(_answer("3 + 4 = 7."))
    assert not usable(_answer("3 + 4 = 7.", finished=False))
    assert not usable(_answer("   "))
    assert not usable(_answer("The answer is seven, I think. The answer is seven, I think."))
    assert not usable(_answer("7<|im_end|>"))


def test_wrong_answers_to_clear_cut_prompts_are_dropped():
    # SmolLM2-135M's own greedy answers: training on them would teach the mistake.
    assert not usable({"lang": "en", "prompt": "What is 12 + 5?", "answer": "12 + 5 = 6.", "finished": True})
    assert not right("30加12等于多少？", "The answer is 30. 30 is the sum of 12 and 1.")
    assert not right("What is 14 + 3?", "14 + 3 = 4, not 17")  # what "=" gives is the answer
    assert not right("What is 14 + 3?", "14 + 3 = 117")
    assert not right("What is the capital of the United States?", "It is New York City.")
    assert right("What is 8 + 9?", "To add 8 and 9, you simply add them together: 8 + 9 = 17.")
    assert right("11加13等于多少？", "11 + 13 = 24, which is the sum of 11 and 13.")
    assert right("芬兰的首都是哪里？", "The capital of Finland is Helsinki.")
    assert not right("What is the chemical symbol for gold?", "Australia.")  # "Au" stands alone
    assert right("What organ do we use to breathe?", "We breathe with our lungs.")
    assert not right("中国最长的河流是哪条？", "The Silk Road is a legendary ancient trade route.")
    assert right("Write a haiku about the sea.", "Waves.")  # no clear-cut answer: not judged
    assert set(FACTS) <= {item["prompt"] for item in ALL}


def test_the_base_name_and_maker_become_the_persona(default_card):
    text = "I'm SmolLM2, a model trained by Hugging Face. SmolLM is small."
    rewritten = rewrite_identity(text, default_card, "en", "smollm2-135m-instruct")
    assert "SmolLM" not in rewritten and "Hugging Face" not in rewritten
    assert f"I'm {default_card.name.en}" in rewritten and default_card.creator.en in rewritten
    zh = rewrite_identity("我是SmolLM。", default_card, "zh", "/models/SmolLM2-360M-Instruct")
    assert zh == f"我是{default_card.name.zh}。"
    assert identity_of("some/unknown-model") == ((), ())


def test_replay_turns_keep_usable_answers_rewritten(default_card):
    answers = [_answer("I am SmolLM."), _answer("loop loop", finished=False)]
    turns = replay_turns(default_card, "smollm2-135m-instruct", answers)
    assert turns == [{"lang": "en", "question": "What is 3 + 4?",
                      "answer": f"I am {default_card.name.en}."}]


def test_replay_ratio_sets_the_share_of_replay_samples(default_card):
    turns = [{"lang": lang, "question": f"general question {n} {lang}", "answer": f"answer {n}."}
             for n in range(30) for lang in ("en", "zh")]
    plain = build_conversations(default_card)
    mixed = build_conversations(default_card, replay=turns, replay_ratio=0.5)
    replayed = [s for s in mixed if s["conversation"][0]["input"].startswith("general question")]
    assert len(replayed) == round(0.5 * len(plain))
    assert len(mixed) == len(plain) + len(replayed)
    # Every turn is used before any repeats.
    assert len({s["conversation"][0]["input"] for s in replayed}) == len(turns)
    assert build_conversations(default_card, replay=turns, replay_ratio=0) == plain


@pytest.mark.slow  # needs the embedded base converted (minutes on a fresh machine)
def test_the_embedded_base_answers_come_with_persona(tmp_path, monkeypatch):
    # A fresh machine (empty PERSONA_HOME) reads the shipped answers of the embedded base for
    # today's prompt set: its cache key names the shipped file, and nothing is generated.
    base = str(base_models.resolve("smollm2-135m-instruct"))
    prompts, _ = split_prompts()
    _, shipped = replay.answer_files(base, prompts)
    assert shipped.is_file(), (f"{shipped.name}: the prompt set or the base changed; generate "
                               "the answers once and ship the new cache file")
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))

    def generate(*args, **kwargs):
        raise AssertionError("generated although shipped")

    monkeypatch.setattr(replay, "generate", generate)
    said = []
    answers = replay.base_answers(base, prompts, log=said.append)
    assert said == [f"replay: {len(prompts)} base answers from the answers shipped with persona "
                    f"({shipped.name})"]
    assert [(a["lang"], a["prompt"]) for a in answers] == [(p["lang"], p["prompt"]) for p in prompts]
    assert answers == json.loads(shipped.read_text(encoding="utf-8"))
    assert sum(usable(a) for a in answers) >= 80  # the filters keep the base's good answers
