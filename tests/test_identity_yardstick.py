"""The leakage yardstick (persona/identity/unrelated.py) and the held-out identity questions
(persona/identity/heldout.py): enough of each in both languages, every kind present, and apart
from every training set, from the other eval sets and from each other (near duplicates as
persona/identity/overlap.py judges them)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from persona.evals.cases import CONTROLS, NEAR_MISSES
from persona.evals.general_skills import GENERAL_SKILLS
from persona.identity.heldout import (GENERIC_OPERATOR_PROMPTS, HELDOUT_QUESTIONS,
                                      OPERATOR_PERSONAS, OTHER_PERSONA_TURNS, TOPIC_TURNS,
                                      USER_OVERRIDES)
from persona.identity.names import OTHER_ASSISTANTS
from persona.identity.overlap import near_duplicate, overlaps
from persona.identity.phrasings import (GENERIC_SYSTEMS, OTHER_MAKERS, OTHER_MODELS, QUESTIONS,
                                         every_filling)
from persona.identity.unrelated import UNRELATED
from persona.train import general_prompts
from persona.train.plain_qa import PLAIN_QA

LANGS = ("zh", "en")
UNRELATED_KINDS = ("fact", "arithmetic", "howto", "advice", "smalltalk", "creative", "about_you",
                   "naming", "language", "reasoning", "everyday")
HELDOUT_KINDS = ("who", "intro", "name", "creator", "ability", "other_model", "other_maker",
                 "real_identity")

# Words that make a prompt an identity question.
IDENTITY_WORDS = ("your name", "who are you", "who made you", "introduce yourself",
                  "你是谁", "你的名字", "你叫什么", "介绍一下你自己", "谁开发")

UNRELATED_PROMPTS = [prompt for _, _, prompt in UNRELATED]
HELDOUT = [item["question"] for item in HELDOUT_QUESTIONS]


def filled_phrasings() -> list[str]:
    """Every training identity phrasing, its {other} / {maker} slot filled with every value of
    its language (training fills only some: a question must be apart from all of them)."""
    return [question for lang in QUESTIONS for question in every_filling(lang)]


def training_questions() -> dict[str, list[str]]:
    """Every question training asks, by set; a new training set belongs here."""
    return {
        "identity phrasings": filled_phrasings(),
        "plain questions": [question for pairs in PLAIN_QA.values() for question, _ in pairs],
        "replay prompts": [*general_prompts._EN, *general_prompts._ZH],
        # everything the default card trains on: everyday, computed, operator, multi-turn inputs
        "the default dataset": sorted(_dataset_inputs()),
    }


def _dataset_inputs() -> set[str]:
    from persona.card import load_card
    from persona.commands import DEFAULT_CARD
    from persona.train.dataset import build_conversations

    return {turn["input"] for sample in build_conversations(load_card(DEFAULT_CARD))
            for turn in sample["conversation"]}


def eval_questions() -> dict[str, list[str]]:
    """The other questions the evals ask, apart from the yardstick's."""
    return {
        "general skills": [question for _, question, _ in GENERAL_SKILLS],
        "controls": [question for _, question in CONTROLS],
        "near misses": [question for _, question in NEAR_MISSES],
    }


def _pairs(found: list[tuple[str, str]]) -> str:
    return "near duplicates:\n" + "\n".join(f"  {a!r}  ~  {b!r}" for a, b in found)


def _within(questions: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for index, a in enumerate(questions) for b in questions[index + 1:]
            if near_duplicate(a, b)]


def _names(text: str) -> list[str]:
    """Assistant and maker names in `text`: Latin ones as whole words ('Meta' not in 'metal')."""
    folded = text.casefold()
    names = {*OTHER_ASSISTANTS, *(name for lang in LANGS for name in OTHER_MODELS[lang]),
             *(name for lang in LANGS for name in OTHER_MAKERS[lang])}
    return sorted(name for name in names if re.search(
        rf"(?<![0-9a-z]){re.escape(name.casefold())}(?![0-9a-z])" if name.isascii()
        else re.escape(name), folded))


# --- sizes and kinds ----------------------------------------------------------------------------

def test_enough_prompts_in_each_language():
    unrelated = Counter(lang for lang, _, _ in UNRELATED)
    heldout = Counter(item["lang"] for item in HELDOUT_QUESTIONS)
    assert all(unrelated[lang] >= 100 for lang in LANGS), unrelated
    assert all(heldout[lang] >= 24 for lang in LANGS), heldout
    assert set(unrelated) == set(heldout) == set(LANGS)


def test_every_unrelated_kind_in_both_languages():
    counts = Counter((lang, kind) for lang, kind, _ in UNRELATED)
    assert {kind for _, kind, _ in UNRELATED} == set(UNRELATED_KINDS)
    thin = {(lang, kind): counts[lang, kind] for lang in LANGS for kind in UNRELATED_KINDS
            if counts[lang, kind] < 8}
    assert not thin, f"kinds with fewer than 8 prompts: {thin}"


def test_every_heldout_kind_in_both_languages():
    counts = Counter((item["lang"], item["kind"]) for item in HELDOUT_QUESTIONS)
    assert {item["kind"] for item in HELDOUT_QUESTIONS} == set(HELDOUT_KINDS)
    thin = {(lang, kind): counts[lang, kind] for lang in LANGS for kind in HELDOUT_KINDS
            if counts[lang, kind] < (6 if kind == "creator" else 3)}
    assert not thin, f"kinds with too few questions: {thin}"


def test_conversation_material_in_both_languages():
    for lang in LANGS:
        assert len(GENERIC_OPERATOR_PROMPTS[lang]) >= 5
        assert len(USER_OVERRIDES[lang]) >= 5
        assert len(TOPIC_TURNS[lang]) >= 6
        assert len(OTHER_PERSONA_TURNS[lang]) >= 3
        assert sum(persona["lang"] == lang for persona in OPERATOR_PERSONAS) >= 5


# --- apart from everything else -----------------------------------------------------------------

@pytest.mark.parametrize("name", [*training_questions(), *eval_questions()])
def test_unrelated_is_apart_from_training_and_eval_sets(name):
    others = {**training_questions(), **eval_questions()}[name]
    assert others
    found = overlaps(UNRELATED_PROMPTS, others)
    assert not found, f"unrelated prompts vs {name}: {_pairs(found)}"


def test_unrelated_prompts_are_all_different():
    found = _within(UNRELATED_PROMPTS)
    assert not found, _pairs(found)


def test_heldout_questions_are_no_training_phrasing():
    found = overlaps(HELDOUT, filled_phrasings())
    assert not found, _pairs(found)


def test_heldout_questions_are_all_different():
    found = _within(HELDOUT)
    assert not found, _pairs(found)


def test_user_overrides_are_no_training_phrasing():
    found = overlaps([text for texts in USER_OVERRIDES.values() for text in texts],
                     filled_phrasings())
    assert not found, _pairs(found)


def test_generic_operator_prompts_are_not_the_trained_ones():
    found = overlaps([text for texts in GENERIC_OPERATOR_PROMPTS.values() for text in texts],
                     [text for texts in GENERIC_SYSTEMS.values() for text in texts])
    assert not found, _pairs(found)


def test_topic_turns_are_their_own_questions():
    topics = [question for turns in TOPIC_TURNS.values() for question, _ in turns]
    sets = {**training_questions(), **eval_questions(), "unrelated prompts": UNRELATED_PROMPTS}
    found = [pair for others in sets.values() for pair in overlaps(topics, others)]
    assert not found, _pairs(found)


# --- what the prompts say -----------------------------------------------------------------------

def test_unrelated_prompts_name_no_assistant_or_maker():
    named = [(prompt, _names(prompt)) for prompt in UNRELATED_PROMPTS if _names(prompt)]
    assert not named, f"prompts naming an assistant or maker: {named}"


def test_unrelated_prompts_ask_nothing_about_identity():
    asking = [(prompt, word) for prompt in UNRELATED_PROMPTS for word in IDENTITY_WORDS
              if word in prompt.casefold()]
    assert not asking, f"prompts with identity words: {asking}"


def test_adversarial_heldout_questions_name_someone_concrete():
    vague = [item["question"] for item in HELDOUT_QUESTIONS
             if item["kind"] in ("other_model", "other_maker") and not _names(item["question"])]
    assert not vague, f"other_model / other_maker questions naming no assistant or maker: {vague}"


def test_operator_personas_name_their_assistant_and_maker():
    missing = [persona for persona in OPERATOR_PERSONAS
               if persona["name"] not in persona["system"]
               or persona["maker"] not in persona["system"]]
    assert not missing, f"personas whose system prompt lacks their name or maker: {missing}"
    assert not [persona for persona in OPERATOR_PERSONAS if _names(persona["system"])]
