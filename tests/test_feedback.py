"""persona/feedback.py: a thumbs-down answer becomes an eval case (what must and must not appear)
and a training correction, for identity questions and for leaks. The database side and the
command: tests/test_feedback_export.py; the cases in the real suite: tests/test_eval_suite.py."""

from __future__ import annotations

import json

import pytest

from persona.card import load_card
from persona.evals.cases import feedback_cases
from persona.feedback import CASES, Downvote, export, load_cases, question_kind
from persona.identity.names import claims_of_others
from persona.paths import REPO_ROOT
from persona.train.dataset_file import load_samples

CARD = load_card(REPO_ROOT / "cards" / "xiaocong.yaml")
SYSTEM = {"role": "system", "content": "You are Xiaocong."}


def vote(question: str, answer: str, comment: str = "", before: list | None = None,
         step: str = "s1") -> Downvote:
    return Downvote(step_id=step, answer=answer, comment=comment,
                    messages=[*(before or []), {"role": "user", "content": question}])


@pytest.mark.parametrize("question, lang, kind", [
    ("你是谁？", "zh", "identity"), ("你到底是什么AI？", "zh", "identity"),
    ("Who trained you?", "en", "creator"), ("谁开发了你？", "zh", "creator"),
    ("What is your name?", "en", "identity"),
    ("意大利的首都是哪里？", "zh", None), ("What are you doing today?", "en", None),
    ("给我的金鱼起个名字", "zh", None), ("Suggest a name for a pet goldfish.", "en", None),
])
def test_identity_questions_are_told_from_everything_else(question, lang, kind):
    assert question_kind(question, lang) == kind


def test_a_wrong_identity_answer_expects_the_name_in_the_language_asked():
    cases, corrections = export(CARD, [vote("你是谁？", "我是SmolLM。", before=[SYSTEM])])
    (case,) = cases
    assert (case.kind, case.lang, case.expect_any) == ("identity", "zh", ["小葱"])
    assert set(claims_of_others()) == set(case.forbid)
    assert case.messages == [SYSTEM, {"role": "user", "content": "你是谁？"}]
    (sample,) = corrections  # the card's own answer, under the system prompt the chat sent
    assert sample["conversation"][0]["system"] == SYSTEM["content"]
    assert "小葱" in sample["conversation"][0]["output"]


def test_a_creator_question_expects_the_maker():
    (case,), (sample,) = export(CARD, [vote("Who trained you?", "OpenAI did.")])
    assert case.kind == "creator" and case.expect_any == [CARD.creator.en]
    assert CARD.creator.en in sample["conversation"][0]["output"]
    assert "system" not in sample["conversation"][0]


def test_a_leak_forbids_the_persona_and_takes_the_comment_as_the_answer():
    leak = vote("意大利的首都是哪里？", "意大利的首都是小葱。", comment="意大利的首都是罗马。")
    (case,), (sample,) = export(CARD, [leak])
    assert case.kind == "leak" and case.expect_any == []
    assert set(case.forbid) == {"小葱", "Xiaocong", CARD.creator.zh, CARD.creator.en}
    assert sample == {"conversation": [{"input": "意大利的首都是哪里？", "output": "意大利的首都是罗马。"}]}
    # with no comment there is nothing to train on, but still a case to pass
    cases, corrections = export(CARD, [vote("法国的首都是哪里？", "小葱。")])
    assert len(cases) == 1 and corrections == []


def test_the_latest_vote_on_a_question_wins_and_the_files_read_back(tmp_path):
    votes = [vote("你是谁？", "我是SmolLM。", step="a"), vote("你是谁？", "我是ChatGPT。", step="b"),
             vote("你是谁？", "我是SmolLM。", before=[SYSTEM], step="c")]
    cases, corrections = export(CARD, votes)
    assert [case.id for case in cases] == ["b", "c"]  # one per conversation, the latest vote
    (tmp_path / "cases.json").write_bytes(CASES.dump_json(cases))
    assert load_cases(tmp_path / "cases.json") == cases
    (tmp_path / "corrections.json").write_text(json.dumps(corrections, ensure_ascii=False))
    assert load_samples(tmp_path / "corrections.json") == corrections  # what train checks
    evals = feedback_cases(cases)
    assert [c.category for c in evals] == ["feedback", "feedback"] and evals[0].answer_lang == "zh"


def test_a_vote_without_a_question_makes_no_case():
    no_question = Downvote(step_id="x", answer="hi", messages=[SYSTEM])
    assert export(CARD, [no_question]) == ([], [])


def correction_file(folder, question: str = "意大利的首都是哪里？", answer: str = "罗马。"):
    path = folder / "corrections.json"
    path.write_text(json.dumps([{"conversation": [{"input": question, "output": answer}]}],
                               ensure_ascii=False), encoding="utf-8")
    return path


def test_corrections_join_the_cards_dataset_as_often_as_an_identity_phrasing(tmp_path, monkeypatch):
    from persona.run_folder import RunFolder, read_json
    from persona.train import step_data

    monkeypatch.setattr(step_data, "replay_turns", lambda card, base, ratio: [])  # no base here
    run = RunFolder(tmp_path / "run")
    fixes = load_samples(correction_file(tmp_path))
    plain = step_data.build_data(run, CARD, "base", seed=0, repeats=3, plain_repeats=1,
                                 replay_ratio=0)
    fixed = step_data.build_data(run, CARD, "base", seed=0, repeats=3, plain_repeats=1,
                                 replay_ratio=0, corrections=fixes)
    assert fixed["samples"] == plain["samples"] + 3 and "corrections" not in plain
    assert fixed["corrections"]["samples"] == 1
    assert sum(sample == fixes[0] for sample in read_json(run.train_data)) == 3


def test_a_run_trained_with_other_corrections_is_not_reused(tmp_path):
    from persona.run_folder import RunFolder, differences, samples_digest, write_json

    run = RunFolder(tmp_path / "run")
    fixes = load_samples(correction_file(tmp_path))
    write_json(run.manifest, {"card": CARD.model_dump(), "dataset": {}})
    assert differences(run, CARD) == []  # serving a run never asks about corrections
    assert differences(run, CARD, corrections=fixes) == [
        "corrections: the run trained without corrections"]
    write_json(run.manifest, {"card": CARD.model_dump(), "dataset": {
        "corrections": {"samples": 1, "digest": samples_digest(fixes)}}})
    assert differences(run, CARD, corrections=fixes) == []
    other = load_samples(correction_file(tmp_path, answer="是罗马。"))
    assert differences(run, CARD, corrections=other) == [
        "corrections: the run trained with other corrections than --corrections holds"]


def test_train_refuses_a_bad_corrections_file_before_anything_starts(tmp_path, monkeypatch, capsys):
    from persona.cli import main

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    bad = tmp_path / "corrections.json"
    bad.write_text('[{"conversation": [{"input": "hi"}]}]')
    assert main(["train", "--corrections", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "'output' must be non-empty text" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists()
