"""The loop from the chat to a corrected persona, on real components: everyday questions the
session's persona answers with its own name (asked of the real vLLM server) are voted down in
the chat's database with the answer the user wanted; `persona feedback export`
turns them into eval cases and corrections; `pytest evals/` fails those cases on the persona;
`persona train --corrections --refine` trains it on them (real XTuner, from its adapter); served
again by vLLM, the refined persona passes the exported cases and still knows who it is."""

from __future__ import annotations

import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from chainlit.types import Feedback

from persona import commands, envs
from persona.cli import main
from persona.identity.judges import names_any
from persona.identity.unrelated import UNRELATED
from persona.run_folder import RunFolder, read_json, samples_digest
from persona.services import Children, free_port
from test_eval_suite import run_suite
from test_ui_data_layer import exchange, in_chainlit, sign_in
from persona.ui import store

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")]

# Everyday questions of the leakage yardstick that the default persona answered with its own
# name when trained (docs/evals/xiaocong-refine/before), each with the answer a user would write
# in the thumbs-down comment. The first three Chinese and the first English one are the
# corrections measured in docs/training.md ("Correcting a persona"). A comment is the answer to
# its own question: one generic answer written for every question was measured to spread into
# unrelated and identity answers instead of being learnt for those questions.
WANTED = {"zh": 3, "en": 1}
ANSWERS = {
    "你平时喜欢听歌吗？": "我没有自己的耳朵，不过很多人喜欢边听歌边放松。你平时爱听哪类歌？",
    "又到周末了，有啥安排没？": "周末可以出去走走、看场电影，或者在家好好休息。你想怎么过？",
    "我的博客主要写家常菜，起个什么名字好？": "可以叫“灶台日记”或者“家常小厨”。",
    "云是由什么组成的？": "云是由空气中的小水滴和小冰晶聚在一起组成的。",
    "室友晚上总是很吵，我该怎么跟他说？": "找个他不忙的时候，客气地说明你晚上需要安静休息，再商量一个都能接受的时间。",
    "同事老找我帮忙，不好意思拒绝怎么办？": "先说明自己手上的工作，真忙不过来时礼貌地说“这次帮不上，下次有空再帮你”。",
    "一年四季里你最喜欢哪个季节？": "很多人喜欢秋天，不冷不热，天高气爽。你呢？",
    "甜粽子和咸粽子，你站哪一边？": "各有各的好：北方多爱甜粽，南方多爱咸粽。你喜欢哪种？",
    "你觉得什么样的人才算真朋友？": "在你需要的时候愿意帮你、也愿意对你说真话的人。",
    "“我们”和“咱们”有什么区别？": "“咱们”一定包括听话的人，“我们”可以包括，也可以不包括。",
    "How do you tie a necktie?": "Drape it around your collar, cross the wide end over the narrow "
                                 "one, loop it up through the neck, bring it down through the "
                                 "knot and tighten.",
    "How do you grow tomatoes from seeds?": "Sow the seeds in small pots indoors, keep them warm "
                                            "and moist, and plant the seedlings out in a sunny "
                                            "spot once the frost is over.",
    "Should I learn guitar or piano first?": "Either works; pick the one whose music you want to "
                                             "play, since that keeps you practising.",
    "Which one doesn't belong: apple, banana, carrot, grape?": "The carrot: it is a vegetable, "
                                                               "the others are fruits.",
}


def leaking(endpoint, card) -> list[tuple[str, str, str]]:
    """(lang, question, answer) of the questions above that the persona answers naming itself,
    asked greedily as the chat asks them (the card's system prompt first): WANTED of each
    language at most, in the order above."""
    client = endpoint.client()
    own = (card.name.zh, card.name.en, card.creator.zh, card.creator.en)
    langs = {question: lang for lang, _, question in UNRELATED}
    assert set(ANSWERS) <= set(langs)  # the yardstick's own prompts, so `pytest evals/` asks them too

    def ask(question):
        reply = client.chat.completions.create(
            model=endpoint.model, temperature=0, max_tokens=96, messages=[
                {"role": "system", "content": card.default_system_prompt()},
                {"role": "user", "content": question}])
        return langs[question], question, reply.choices[0].message.content or ""

    with ThreadPoolExecutor(8) as pool:
        answers = [answer for answer in pool.map(ask, ANSWERS) if names_any(answer[2], own)]
    return [answer for lang, most in WANTED.items()
            for answer in [found for found in answers if found[0] == lang][:most]]


def voted_down(url: str, card, wrong) -> None:
    """Each wrong answer as the chat stores it, voted down with the answer the user wanted."""
    async def scenario(layer):
        user, thread_id = await sign_in(layer, "ada")
        for _, question, answer in wrong:  # a thread each: nothing said before the question
            _, message = await exchange(layer, user, thread_id, [], question, answer,
                                        system=card.default_system_prompt())
            await layer.upsert_feedback(Feedback(forId=message.run_id, threadId=thread_id,
                                                 value=0, comment=ANSWERS[question]))
            user, thread_id = await sign_in(layer, "ada")
    in_chainlit(url, scenario)


def evals(endpoint_url: str, key: str, model: str, card_path, cases, report, *only: str):
    """`pytest evals/` on the exported cases and the categories named; (code, output, report)."""
    return run_suite(endpoint_url, model, key, report, "--feedback-cases", str(cases),
                     "--only", ",".join(only), card=card_path)


def test_thumbs_down_answers_are_corrected_by_a_refine_and_pass_their_cases(
        persona_api, trained_run, default_card, card_path, tmp_path, capsys):
    wrong = leaking(persona_api, default_card)
    assert wrong, ("the persona named itself in none of the everyday questions: the loop has "
                   "no wrong answer to correct")
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    store.prepare(url)
    voted_down(url, default_card, wrong)
    exported = tmp_path / "feedback"
    assert main(["feedback", "export", "--card", str(card_path), "--db-url", url,
                 "--out", str(exported)]) == 0
    assert "--refine" in capsys.readouterr().out  # the next command it prints
    cases, corrections = exported / "cases.json", exported / "corrections.json"
    assert [case["question"] for case in read_json(cases)] == [q for _, q, _ in wrong]

    # The persona as it is fails every exported case: they test what went wrong
    code, output, report = evals(persona_api.base_url, persona_api.api_key, persona_api.model,
                                 card_path, cases, tmp_path / "before", "feedback")
    assert code == 1 and "test_every_thumbs_down_is_fixed" in output, output[-3000:]
    assert report["categories"]["feedback"]["passed"] == 0

    run = RunFolder.at(tmp_path / "run")  # a copy: the session's run stays as the others see it
    shutil.copytree(trained_run, run.root, ignore=shutil.ignore_patterns(".lock", "work",
                                                                         "export"))
    assert main(["train", "--card", str(card_path), "--out", str(run.root),
                 "--corrections", str(corrections), "--refine"]) == 0
    fixes = run.read_manifest()["dataset"]["corrections"]
    assert fixes["digest"] == samples_digest(read_json(corrections)) and fixes["refined"]["steps"]
    assert main(["train", "--card", str(card_path), "--out", str(run.root),
                 "--corrections", str(corrections), "--refine"]) == 0
    assert "already refined with these corrections" in capsys.readouterr().out

    key = "sk-test-" + secrets.token_hex(8)
    with Children() as children:
        served = commands._start_api(default_card, run.merged, "127.0.0.1", free_port(), key,
                                     children)
        code, output, report = evals(served, key, default_card.id, card_path, cases,
                                     tmp_path / "after", "feedback", "identity-zh",
                                     "identity-en", "creator", "control")
    categories = report["categories"]
    assert categories["feedback"]["passed"] == len(wrong), output[-3000:]
    assert code == 0, output[-3000:]  # and it still knows who it is, in both languages
    print(f"refined on {len(wrong)} corrections: " + ", ".join(
        f"{name} {row['passed']}/{row['total']}" for name, row in categories.items()))
