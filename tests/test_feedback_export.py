"""`persona feedback export` on a real chat database (SQLite and PostgreSQL): the thumbs-down
answers of one persona, stored as the chat stores them, become eval cases and corrections; a
thumbs-up, another persona's answer or an error note do not."""

from __future__ import annotations


import chainlit as cl
from chainlit.types import Feedback

from persona.cli import main
from persona.feedback import load_cases
from persona.paths import REPO_ROOT
from persona.train.dataset_file import load_samples
from test_ui_data_layer import exchange, in_chainlit, sign_in, url  # noqa: F401 (url: a fixture)


def test_thumbs_down_answers_become_cases_and_corrections(url, tmp_path, capsys):
    async def scenario(layer):
        user, thread_id = await sign_in(layer, "ada")
        past, who = await exchange(layer, user, thread_id, [], "你是谁？", "我是 SmolLM")
        past, leak = await exchange(layer, user, thread_id, past, "法国的首都是哪里？", "小葱")
        _, fine = await exchange(layer, user, thread_id, past, "Who made you?", "Master No-Scallion")
        for answer, value, comment in [(who, 0, ""), (leak, 0, "法国的首都是巴黎。"), (fine, 1, "")]:
            await layer.upsert_feedback(Feedback(forId=answer.run_id, threadId=thread_id,
                                                 value=value, comment=comment))
        note = cl.ErrorMessage(content="⚠️ the server went away")  # rated along with its run
        note.parent_id = who.run_id
        await note.send()

    in_chainlit(url, scenario)
    out = tmp_path / "feedback"
    assert main(["feedback", "export", "--db-url", url, "--out", str(out)]) == 0
    cases = load_cases(out / "cases.json")
    assert [(case.kind, case.question) for case in cases] == [
        ("identity", "你是谁？"), ("leak", "法国的首都是哪里？")]
    assert cases[0].answer_was.strip() == "我是 SmolLM" and cases[0].expect_any == ["小葱"]
    assert cases[1].before[0].role == "system" and len(cases[1].before) == 3  # the turn before
    corrections = load_samples(out / "corrections.json")
    assert corrections[1]["conversation"][0]["output"] == "法国的首都是巴黎。"
    assert "2 eval cases" in capsys.readouterr().out

    # another persona has nothing voted down
    assert main(["feedback", "export", "--card", str(REPO_ROOT / "cards" / "lingxi.yaml"),
                 "--db-url", url, "--out", str(tmp_path / "none")]) == 0
    assert "no thumbs-down answer of lingxi" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


def test_a_bad_database_url_is_refused_with_what_to_use(tmp_path, capsys):
    assert main(["feedback", "export", "--db-url", "mysql://x/y", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "PERSONA_DB_URL" in err and "Traceback" not in err
    assert main(["feedback", "import"]) == 2
    assert "the one action is `persona feedback export`" in capsys.readouterr().err
