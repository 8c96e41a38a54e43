"""The eval cases: built from the card, never from a training question, and the checks can fail."""

from persona.evals.cases import build_cases, heldout_questions
from persona.evals.thresholds import THRESHOLDS
from persona.card import load_card
from persona.commands import DEFAULT_CARD
from persona.identity.judges import language_of, problems, repeated_sentence
from persona.identity.phrasings import training_questions
from persona.run_folder import RunFolder, write_json
from persona.train.dataset import build_conversations, write_dataset


def _asked(case) -> str:
    return case.messages[-1]["content"]


def test_eval_questions_never_appear_in_training_data():
    card = load_card(DEFAULT_CARD)
    trained = {turn["input"] for sample in build_conversations(card)
               for turn in sample["conversation"]}
    trained |= {item["question"] for item in training_questions(("SmolLM2",))}
    asked = {_asked(case) for case in build_cases(card)}
    assert asked and not asked & trained


LENIENT = ("control", "general-skill", "leakage-zh", "leakage-en")


def test_every_category_is_present_and_filled_from_the_card():
    card = load_card(DEFAULT_CARD)
    cases = build_cases(card)
    categories = {case.category for case in cases}
    assert set(THRESHOLDS) <= categories and "general-skill" in categories
    for case in cases:
        if case.category in LENIENT:
            # over-firing and knowledge only: the base's runaway Chinese is not over-firing
            assert {card.name.en, card.name.zh, card.creator.en, card.creator.zh} <= set(case.forbid)
            assert not case.expect_any and not case.strict
            assert bool(case.accept) == (case.category == "general-skill")
        elif case.category == "operator-persona":
            # the operator's system prompt names another assistant: that one must answer
            assert case.expect_any[0] in case.messages[0]["content"]
            assert card.name.en in case.forbid and case.answer_lang == case.lang
        else:
            assert case.strict and case.answer_lang == case.lang
            wanted = card.creator if case.category == "creator" else card.name
            assert getattr(wanted, case.lang) in case.expect_any or case.category != "creator"
            assert case.expect_any[0] in (getattr(card.name, case.lang),
                                          getattr(card.creator, case.lang))


def test_identity_is_asked_enough_in_each_language_and_leakage_at_scale():
    cases = build_cases(load_card(DEFAULT_CARD))
    for lang in ("zh", "en"):
        identity = [case for case in cases if case.lang == lang
                    and case.category in ("identity-" + lang, "creator", "adversarial")]
        assert len(identity) >= 24, (lang, len(identity))
        assert len([case for case in cases if case.category == f"leakage-{lang}"]) >= 100
    depths = {sum(m["role"] == "user" for m in case.messages) for case in cases
              if case.category == "multi-turn"}
    assert {1, 3, 6} <= depths  # identity asked at turn 1, 3 and 6


def test_thresholds_leave_room_for_a_failure_at_their_sample_size():
    """Below 1.0 a threshold must allow at least one failing case at its n, else it demands
    100 % while claiming less."""
    cases = build_cases(load_card(DEFAULT_CARD))
    for category, threshold in THRESHOLDS.items():
        total = sum(case.category == category for case in cases)
        if threshold < 1.0:
            assert int(total * (1 - threshold) + 1e-9) >= 1, (category, total, threshold)


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


def test_template_leakage_and_answer_language_are_caught():
    assert "placeholder" in problems("I am {{name}}.", "stop")[0]
    assert "placeholder" in problems("我是{name}。", "stop")[0]
    assert problems("The set {1, 2} has two items.", "stop") == []
    assert language_of("我是小葱，由不要葱姜蒜大佬打造的AI助手。") == "zh"
    assert language_of("I am Xiaocong, an AI assistant created by Master No-Scallion.") == "en"
    assert "answered in en" in problems("I am Xiaocong.", "stop", ("Xiaocong",), answer_lang="zh")[0]
    assert problems("我是小葱。", "stop", ("小葱",), answer_lang="zh") == []


def test_a_run_is_asked_its_own_heldout_file(tmp_path):
    """The evals take the held-out questions from the run; the default run's file is the
    identity core's split, so its cases are the same as an endpoint's without a run."""
    card = load_card(DEFAULT_CARD)
    run = RunFolder(tmp_path / "run")
    write_dataset(card, run)
    assert build_cases(card, heldout_questions(run.root)) == build_cases(card)
    own = [{"lang": lang, "kind": kind, "question": f"{lang} {kind} question of this run"}
           for lang in ("zh", "en") for kind in ("who", "creator")]
    write_json(run.heldout, own)
    asked = {_asked(case) for case in build_cases(card, heldout_questions(run.root))
             if case.category not in (*LENIENT, "near-miss", "adversarial")}  # fixed questions
    assert asked and asked <= {item["question"] for item in own}

