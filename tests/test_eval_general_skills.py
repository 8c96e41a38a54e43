"""The general-skill questions: never trained on, answers checkable in free text, and the stored
base run covers exactly today's questions."""

import pytest

from persona.evals import baseline
from persona.evals.cases import CONTROLS, heldout_questions
from persona.evals.general_skills import GENERAL_SKILLS
from persona.identity.judges import is_right
from persona.card import load_card
from persona.paths import REPO_ROOT
from persona.train.dataset import build_conversations
from persona.train.general_prompts import ALL as REPLAY_PROMPTS
from persona.train.plain_qa import PLAIN_QA

QUESTIONS = [question for _, question, _ in GENERAL_SKILLS]


def _fold(text: str) -> str:
    return "".join(text.casefold().split())


def test_general_questions_are_never_trained_on():
    trained = {turn["input"] for card in sorted((REPO_ROOT / "cards").glob("*.yaml"))
               for sample in build_conversations(load_card(card))
               for turn in sample["conversation"]}
    trained |= {question for pairs in PLAIN_QA.values() for question, _ in pairs}
    trained |= {item["prompt"] for item in REPLAY_PROMPTS}  # general-skill replay, held-out too
    assert trained and not {_fold(q) for q in QUESTIONS} & {_fold(q) for q in trained}


def test_general_questions_are_their_own_set():
    others = {question for _, question in CONTROLS} | {q["question"] for q in heldout_questions()}
    assert len(set(QUESTIONS)) == len(QUESTIONS) and not set(QUESTIONS) & others
    assert 30 <= len(QUESTIONS) <= 70 and {lang for lang, _, _ in GENERAL_SKILLS} == {"en", "zh"}


def test_no_question_contains_its_own_answer():
    # echoing the question back must never count as knowing the answer
    assert [q for _, q, accepted in GENERAL_SKILLS if is_right(q, accepted)] == []


@pytest.mark.parametrize("text, accepted, right", [
    ("The capital of Canada is Ottawa, Canada.", ("Ottawa",), True),
    ("OTTAWA", ("Ottawa",), True),
    ("3 + 4 = 17.", ("7", "seven"), False),
    ("It is seven.", ("7", "seven"), True),
    ("There are 366 days.", ("366",), True),
    ("A category of animals.", ("cat",), False),
    ("“猫”的英文是 cat。", ("cat",), True),
    ("莎士比亚写的。", ("莎士比亚", "Shakespeare"), True),
    ("The largest mammal is the elephant.", ("blue whale",), False),
])
def test_is_right_reads_free_text(text, accepted, right):
    assert is_right(text, accepted) is right


def test_stored_base_run_covers_todays_questions():
    stored = baseline.load(baseline.stored_path("smollm2-135m-instruct"))
    assert sorted(stored["general_skills"]) == sorted(QUESTIONS), (
        "the question set changed: record the base again (`persona eval --compare-base`, then "
        "`python -m persona.evals.baseline REPORT_JSON smollm2-135m-instruct`)")
    rate = stored["categories"]["general-skill"]["rate"]
    assert 0.6 <= rate <= 1.0  # chosen where the base is mostly right, so a loss can show


def test_a_missing_or_foreign_base_report_is_refused(tmp_path):
    with pytest.raises(baseline.BaselineError, match="compare-base"):
        baseline.load(tmp_path / "nothing.json")
    (tmp_path / "other.json").write_text('{"model": "x"}')
    with pytest.raises(baseline.BaselineError, match="lacks"):
        baseline.load(tmp_path / "other.json")
