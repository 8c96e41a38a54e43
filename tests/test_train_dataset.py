"""The self-cognition dataset: filled in, both languages, and a held-out split training never sees."""

import json
import re

import pytest

from persona.card import parse_card
from persona.run_folder import RunFolder
from persona.train.dataset import build_conversations, write_dataset
from persona.identity.heldout import HELDOUT_QUESTIONS
from persona.identity.phrasings import QUESTIONS, training_questions

CARD = {"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
        "creator": {"zh": "不要葱姜蒜大佬", "en": "Master No-Scallion"},
        "base": "smollm2-135m-instruct"}
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def card():
    return parse_card(CARD)


@pytest.fixture(scope="module")
def samples(card):
    return build_conversations(card)


def turns(samples):
    return [turn for sample in samples for turn in sample["conversation"]]


def test_no_placeholder_survives(samples):
    for turn in turns(samples):
        for text in (turn["system"], turn["input"], turn["output"]):
            assert "{" not in text and "}" not in text, turn


def test_heldout_questions_never_trained(samples):
    trained_inputs = {turn["input"] for turn in turns(samples)}
    held = {item["question"] for item in HELDOUT_QUESTIONS}
    assert held, "no held-out questions"
    assert not held & trained_inputs
    assert not held & {item["question"] for item in training_questions(("SmolLM2",))}


def test_training_covers_every_kind_in_both_languages():
    trained = training_questions()
    assert trained == training_questions()
    for lang, banks in QUESTIONS.items():
        for kind in banks:
            assert any(q["lang"] == lang and q["kind"] == kind for q in trained), (lang, kind)
            assert any(q["lang"] == lang and q["kind"] == kind for q in HELDOUT_QUESTIONS), (lang, kind)


def test_both_languages_and_answers_in_the_question_language(samples, card):
    identity = [turn for turn in turns(samples) if card.name.en in turn["output"]
                or card.name.zh in turn["output"]]
    zh = [turn for turn in identity if HAN.search(turn["input"])]
    en = [turn for turn in identity if not HAN.search(turn["input"])]
    assert len(zh) > 50 and len(en) > 50
    assert all(card.name.zh in turn["output"] and card.creator.zh in turn["output"] for turn in zh)
    assert all(card.name.en in turn["output"] and card.creator.en in turn["output"] for turn in en)


def test_half_with_the_default_system_prompt_and_some_multi_turn(samples, card):
    # The default is what the served template injects when a client sends none; the other half
    # carries generic ones, so the identity does not hang on the persona's name in the prompt.
    default = sum(1 for sample in samples if sample["conversation"][0]["system"] == card.default_system_prompt())
    assert 0.4 < default / len(samples) < 0.6
    assert all(sample["conversation"][0]["system"] for sample in samples)
    assert any(len(sample["conversation"]) > 1 for sample in samples)
    # a system prompt only ever opens a conversation
    assert all(not turn["system"] for sample in samples for turn in sample["conversation"][1:])


def test_card_default_system_prompt_replaces_no_system(card):
    custom = card.model_copy(update={"system_prompt": "You are Xiaocong."})
    samples = build_conversations(custom)
    assert all(sample["conversation"][0]["system"] for sample in samples)
    assert sum(sample["conversation"][0]["system"] == "You are Xiaocong." for sample in samples) > len(samples) / 3


def test_eval_controls_are_not_training_questions(samples):
    from persona.evals.cases import CONTROLS

    trained_inputs = {turn["input"] for turn in turns(samples)}
    assert not {question for _, question in CONTROLS} & trained_inputs


def test_extra_samples_are_mixed_in_and_checked(card):
    extra = [{"conversation": [{"system": "", "input": "Ping?", "output": "Pong."}]}]
    assert extra[0] in build_conversations(card, extra=extra)
    with pytest.raises(AssertionError):
        build_conversations(card, extra=[{"conversation": [{"system": "", "input": "Hi {name}",
                                                             "output": "x"}]}])


def test_write_dataset_files(card, tmp_path):
    run = RunFolder(tmp_path)
    stats = write_dataset(card, run)
    train = json.loads(run.train_data.read_text(encoding="utf-8"))
    heldout = json.loads(run.heldout.read_text(encoding="utf-8"))
    assert stats["samples"] == len(train) and stats["heldout_questions"] == len(heldout)
    assert stats["turns_by_lang"]["zh"] > 0 and stats["turns_by_lang"]["en"] > 0
    assert {item["lang"] for item in heldout} == {"zh", "en"}
    assert json.loads(run.stats.read_text()) == stats


def test_operator_defined_assistants_answer_as_themselves(samples, card):
    from persona.train.operator_personas import OTHERS

    others = {name for pairs in OTHERS.values() for name, _ in pairs}
    operator = [turn for turn in turns(samples)
                if any(name in turn["system"] for name in others)]
    assert len(operator) >= 20
    for turn in operator:
        named = next(name for name in others if name in turn["system"])
        assert named in turn["output"] and card.name.en not in turn["output"]
        assert card.name.zh not in turn["output"]


def test_late_identity_and_profile_switch_conversations(samples, card):
    long = [sample["conversation"] for sample in samples if len(sample["conversation"]) >= 3]
    assert any(len(conversation) >= 5 for conversation in long)
    switched = [c for c in long if not c[0]["output_with_loss"]]
    assert switched, "no conversation starts with another persona's answer"
    for conversation in switched:
        assert card.name.en not in conversation[0]["output"]  # the other persona spoke
        assert card.name.zh in conversation[-1]["output"] or card.name.en in conversation[-1]["output"]
        assert all(turn["output_with_loss"] for turn in conversation[1:])
    # XTuner reads output_with_loss per turn: every turn carries it, as a bool
    assert all(isinstance(turn["output_with_loss"], bool) for turn in turns(samples))


def test_chinese_plain_answers_outnumber_chinese_identity_answers(samples, card):
    """The leakage fix: in Chinese the identity answers must not be nearly all the model sees."""
    chinese = [turn for turn in turns(samples) if HAN.search(turn["input"])]
    identity = [turn for turn in chinese if card.name.zh in turn["output"]]
    assert len(chinese) - len(identity) > len(identity)


def test_training_and_eval_operator_assistants_never_share_a_name():
    from persona.identity.heldout import OPERATOR_PERSONAS
    from persona.train.operator_personas import OTHERS

    trained = {word for pairs in OTHERS.values() for pair in pairs for word in pair}
    asked = {persona[key] for persona in OPERATOR_PERSONAS for key in ("name", "maker")}
    assert not trained & asked
