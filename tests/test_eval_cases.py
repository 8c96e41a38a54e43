"""The eval cases: built from the card, never from a training question, and the checks can fail."""

from evals.cases import build_cases
from evals.checks import problems, repeated_sentence
from persona.card import load_card
from persona.commands import DEFAULT_CARD
from train.dataset import build_conversations
from train.phrasings import split_questions


def _asked(case) -> str:
    return case.messages[-1]["content"]


def test_eval_questions_never_appear_in_training_data():
    card = load_card(DEFAULT_CARD)
    trained = {turn["input"] for sample in build_conversations(card)
               for turn in sample["conversation"]}
    trained |= {item["question"] for item in split_questions()[0]}
    asked = {_asked(case) for case in build_cases(card)}
    assert asked and not asked & trained


def test_every_category_is_present_and_filled_from_the_card():
    card = load_card(DEFAULT_CARD)
    cases = build_cases(card)
    categories = {case.category for case in cases}
    assert {"identity-zh", "identity-en", "creator", "adversarial", "system-prompt", "multi-turn",
            "near-miss", "stability", "control", "general-skill"} <= categories
    for case in cases:
        if case.category == "creator":
            assert card.creator.zh in case.expect_any
        elif case.category in ("control", "general-skill"):
            # over-firing and knowledge only: the base's runaway Chinese is not over-firing
            assert card.name.en in case.forbid and not case.expect_any and not case.strict
            assert bool(case.accept) == (case.category == "general-skill")
        else:
            assert case.strict
            assert card.name.zh in case.expect_any


def test_checks_catch_each_failure():
    ok = problems("我是小葱，由不要葱姜蒜大佬打造的AI助手。", "stop", ("小葱",), ("我是ChatGPT",))
    assert ok == []
    assert problems("Hello", "length")[0].startswith("finish_reason")
    assert "template tokens" in problems("hi<|im_end|>", "stop")[0]
    assert "names none" in problems("I am SmolLM.", "stop", ("Xiaocong",))[0]
    assert "contains" in problems("I am ChatGPT, an assistant.", "stop", (), ("I am ChatGPT",))[0]
    looping = "I like to help people every day. I like to help people every day."
    assert repeated_sentence(looping) and "repeats" in problems(looping, "stop")[0]
    assert "wrong answer" in problems("3 + 4 = 8.", "stop", accept=("7",))[0]
    # lenient cases skip the format checks, never the content ones
    assert problems(looping + " 7", "length", accept=("7",), strict=False) == []
    assert problems("I am Xiaocong.", "stop", (), ("Xiaocong",), strict=False)
