"""The hand-written everyday pairs: enough of every kind, short answers that never name an
assistant or a maker, and questions that are no eval question, identity phrasing or other
training question in other clothes."""

from __future__ import annotations

import re

import pytest

from persona.evals.cases import CONTROLS, NEAR_MISSES
from persona.evals.general_skills import GENERAL_SKILLS
from persona.identity import heldout
from persona.identity.names import OTHER_ASSISTANTS
from persona.identity.overlap import near_duplicate, overlaps
from persona.identity.phrasings import OTHER_MAKERS, OTHER_MODELS, every_filling
from persona.identity.unrelated import UNRELATED
from persona.train.everyday_qa import EVERYDAY_QA, EVERYDAY_QA_BY_KIND
from persona.train.general_prompts import ALL as REPLAY_PROMPTS
from persona.train.operator_personas import OTHERS as TRAINING_OPERATORS
from persona.train.plain_qa import PLAIN_QA

LANGS = ("en", "zh")
KINDS = {"small_talk", "about_you", "naming", "creative", "howto", "facts", "uncertain", "yes_no",
         "advice", "who_not_me"}
PERSONA_NAMES = ("Xiaocong", "小葱", "Lingxi", "灵犀")
MAX_ANSWER = {"zh": 40, "en": 25}  # characters in Chinese, words in English


def _questions(lang: str) -> list[str]:
    return [question for question, _ in EVERYDAY_QA[lang]]


def _answer_length(lang: str, answer: str) -> int:
    return len(answer) if lang == "zh" else len(answer.split())


def _identity_questions(lang: str) -> list[str]:
    """Every identity phrasing, a slot filled with every other assistant or maker."""
    return every_filling(lang)


def _names_in(text: str) -> list[str]:
    """Assistant and maker names in `text`: Latin ones as whole words ('Meta' not in 'metal')."""
    names = {*PERSONA_NAMES, *OTHER_ASSISTANTS,
             *(name for lang in LANGS for name in OTHER_MODELS[lang] + OTHER_MAKERS[lang]),
             # the invented assistants of operator system prompts, in training and in the evals
             *(name for pairs in TRAINING_OPERATORS.values() for pair in pairs for name in pair),
             *(item[key] for item in heldout.OPERATOR_PERSONAS for key in ("name", "maker"))}
    folded = text.casefold()
    return [name for name in sorted(names)
            if re.search(rf"(?<![0-9a-z]){re.escape(name.casefold())}(?![0-9a-z])", folded)
            or (not name.isascii() and name in text)]


@pytest.mark.parametrize("lang", LANGS)
def test_enough_pairs_of_every_kind(lang):
    by_kind = EVERYDAY_QA_BY_KIND[lang]
    assert set(by_kind) == KINDS
    counts = {kind: len(pairs) for kind, pairs in by_kind.items()}
    assert min(counts.values()) >= 8, counts
    assert counts["uncertain"] >= (15 if lang == "zh" else 8), counts
    assert len(EVERYDAY_QA[lang]) >= 90
    assert EVERYDAY_QA[lang] == [pair for pairs in by_kind.values() for pair in pairs]


@pytest.mark.parametrize("lang", LANGS)
def test_answers_are_short_finished_and_nameless(lang):
    for question, answer in EVERYDAY_QA[lang]:
        assert question.strip() == question and answer.strip() == answer and question and answer
        assert _answer_length(lang, answer) <= MAX_ANSWER[lang], answer
        assert answer[-1] in "。！？…”.!?\"", answer  # a finished sentence
        assert "{" not in question + answer and "}" not in question + answer
        assert _names_in(answer) == [], answer
        assert _names_in(question) == [], question


def test_the_name_check_reads_words():
    assert _names_in("I am Qwen, made by Meta.") == ["Meta", "Qwen"]
    assert _names_in("我是灵犀。") == ["灵犀"]
    assert _names_in("Polish the metal with a soft cloth.") == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_two_questions_are_the_same_question(lang):
    questions = _questions(lang)
    assert [(a, b) for i, a in enumerate(questions) for b in questions[i + 1:]
            if near_duplicate(a, b)] == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_question_is_an_eval_question(lang):
    evals = [q for q_lang, q, _ in GENERAL_SKILLS if q_lang == lang]
    evals += [q for q_lang, q in [*CONTROLS, *NEAR_MISSES] if q_lang == lang]
    # identity questions the evals ask, alone or after earlier turns
    evals += [item["question"] for item in heldout.HELDOUT_QUESTIONS if item["lang"] == lang]
    evals += [q for q, _ in heldout.TOPIC_TURNS[lang] + heldout.OTHER_PERSONA_TURNS[lang]]
    evals += heldout.USER_OVERRIDES[lang]
    assert evals and overlaps(_questions(lang), evals) == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_question_is_an_identity_question(lang):
    identity = _identity_questions(lang)
    assert len(identity) > 50 and overlaps(_questions(lang), identity) == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_question_is_another_training_question(lang):
    others = [q for q, _ in PLAIN_QA[lang]]
    others += [item["prompt"] for item in REPLAY_PROMPTS if item["lang"] == lang]
    assert overlaps(_questions(lang), others) == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_question_is_an_unrelated_yardstick_prompt(lang):
    # the leakage yardstick must stay unseen: training on it would hide leakage
    prompts = [prompt for p_lang, _, prompt in UNRELATED if p_lang == lang]
    assert prompts and overlaps(_questions(lang), prompts) == []
