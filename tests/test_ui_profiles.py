"""Chat profiles: one per served model id, shown through its card when the repo has one."""

import asyncio

from persona.card import load_card
from persona.paths import REPO_ROOT
from persona.ui.persona_view import load_view, view_of
from persona.ui.profiles import Profile, ServedModels, build_profiles, cards_by_id, pick, view_for

CARDS = REPO_ROOT / "cards"
MAIN = view_of(load_card(CARDS / "xiaocong.yaml"))


def test_repo_cards_are_found_by_id():
    cards = cards_by_id(CARDS)
    assert {"xiaocong", "lingxi"} <= set(cards)
    assert cards["lingxi"].name.en == "Lingxi"


def test_a_broken_card_is_skipped_not_fatal(tmp_path):
    (tmp_path / "good.yaml").write_text(
        "id: good\nname: {zh: 好, en: Good}\ncreator: {zh: 我, en: me}\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("id: Not Valid\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a card", encoding="utf-8")
    assert list(cards_by_id(tmp_path)) == ["good"]
    assert cards_by_id(tmp_path / "missing") == {}


def test_cards_that_fail_only_late_are_skipped_with_a_warning(tmp_path, caplog):
    """A card saved in another encoding, or one whose text the dataset's templates would take
    for a placeholder, must not keep the chat from starting."""
    good = "id: good\nname: {zh: 好, en: Good}\ncreator: {zh: 我, en: me}\n"
    (tmp_path / "good.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "gbk.yaml").write_bytes(good.replace("good", "gbk").encode("gbk"))
    (tmp_path / "slot.yaml").write_text(good.replace("Good", "'{name}'").replace("good", "slot"),
                                        encoding="utf-8")
    with caplog.at_level("WARNING", logger="persona.ui"):
        assert list(cards_by_id(tmp_path)) == ["good"]
    warnings = "\n".join(record.getMessage() for record in caplog.records)
    assert "gbk.yaml" in warnings and "save the card as UTF-8" in warnings
    assert "slot.yaml" in warnings and "name.en" in warnings


def test_profiles_list_the_main_model_first_then_every_served_one():
    cards = cards_by_id(CARDS)
    profiles = build_profiles(["lingxi", "main-model", "mystery-7b"], "main-model", MAIN, cards)
    assert [p.model for p in profiles] == ["main-model", "lingxi", "mystery-7b"]
    assert [p.default for p in profiles] == [True, False, False]
    assert [p.view.author for p in profiles] == ["小葱 · Xiaocong", "灵犀 · Lingxi", "mystery-7b"]
    lingxi = profiles[1]
    assert lingxi.view.starters == cards["lingxi"].starters and "灵犀" in lingxi.view.greeting
    assert "Galaxy Lab" in lingxi.description and "`lingxi`" in lingxi.description
    assert profiles[2].view.starters == [] and "mystery-7b" in profiles[2].view.greeting


def test_the_main_model_stays_when_the_server_does_not_list_it():
    profiles = build_profiles([], "xiaocong", MAIN, {})
    assert [(p.model, p.view) for p in profiles] == [("xiaocong", MAIN)]


def test_pick_falls_back_to_the_default_profile():
    profiles = build_profiles(["other"], "main", MAIN, {})
    assert pick(profiles, "other").model == "other"
    assert pick(profiles, None).model == "main" and pick(profiles, "forged").model == "main"


def test_view_for_an_unknown_id_is_neutral():
    assert view_for("x-1", {}) == load_view(None, "x-1")


def scripted(answers: list):
    """A ServedModels (ttl 30 s, retry 5 s) whose server gives `answers` in turn (an exception
    is raised); get_at(t, fresh) reads it at time t; calls lists when the server was asked."""
    now, calls = [0.0], []

    async def fetch():
        calls.append(now[0])
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, dict) else dict.fromkeys(answer)

    served = ServedModels(fetch, ttl_s=30, retry_s=5, clock=lambda: now[0])

    def get_at(t, fresh=False):
        now[0] = t
        return asyncio.run(served.get(fresh=fresh))

    get_at.served = served
    return get_at, calls


def test_served_models_are_cached_and_a_failure_keeps_the_last_list():
    get_at, calls = scripted([["a", "b"], ConnectionError("down"), ["c"]])

    assert get_at(0) == ["a", "b"]
    assert get_at(29) == ["a", "b"] and len(calls) == 1  # cached
    assert get_at(30) == ["a", "b"] and len(calls) == 2  # failed: the last list stands in
    assert get_at(34) == ["a", "b"] and len(calls) == 2  # no retry before retry_s
    assert get_at(35) == ["c"] and len(calls) == 3


def test_served_models_start_empty_when_the_server_is_down():
    async def fetch():
        raise OSError("connection refused")

    assert asyncio.run(ServedModels(fetch).get()) == []


def test_a_fresh_list_is_asked_for_at_once_but_not_while_a_failure_is_waited_out():
    asked, calls = scripted([["a"], ["a", "b"], ConnectionError("down"), ["a"]])

    def get_at(t, fresh=True):
        return asked(t, fresh)

    assert get_at(0) == ["a"]
    assert get_at(1, fresh=False) == ["a"] and len(calls) == 1
    assert get_at(2) == ["a", "b"] and len(calls) == 2  # a persona added: seen at once
    assert get_at(3) == ["a", "b"] and len(calls) == 3  # the server went down
    assert get_at(4) == ["a", "b"] and len(calls) == 3  # not asked again before retry_s
    assert get_at(8) == ["a"] and len(calls) == 4


def test_a_page_whose_menu_changed_is_stale_once():
    from persona.ui.profiles import Offered

    view = view_for("x", {})
    first = [Profile("xiaocong", view, True)]
    both = first + [Profile("lingxi", view)]
    offered = Offered()
    assert not offered.stale("ann", first)  # a session before any menu was given: keep it
    offered.given("ann", first)
    assert not offered.stale("ann", first)
    assert offered.stale("ann", both)  # lingxi was added: reload once
    assert not offered.stale("ann", both)  # ... and not again
    offered.given("bob", both)
    assert offered.stale("bob", first) and not offered.stale("ann", both)  # each user's own page


def test_each_models_context_comes_with_the_list_and_follows_it():
    # A persona added to a live server gets its context from the next list, not never.
    get_at, _ = scripted([{"a": 2048}, ConnectionError("down"), {"a": 2048, "b": 4096, "c": None}])
    served = get_at.served
    assert served.context("a") is None  # nothing read yet
    get_at(0)
    assert (served.context("a"), served.context("b")) == (2048, None)
    get_at(30)  # failed: the last list and its contexts stand in
    assert served.context("a") == 2048
    assert get_at(35) == ["a", "b", "c"]
    assert (served.context("b"), served.context("c")) == (4096, None)


def test_answering_says_whether_the_servers_last_answer_to_a_listing_was_a_list():
    """What a new chat's wait for a starting server reads (ui/app.py), wired as the app does it
    over real HTTP (the fake server): no before the first list, yes once listed, no once the
    server refuses (though the last list stands in), and yes again once it is back."""
    from fake_openai import FakeOpenAI
    from persona.ui.llm import make_client, served_models
    from persona.ui.settings import UISettings

    now = [0.0]
    with FakeOpenAI(api_key="test-key", token_delay_s=0.0) as fake:
        async def main() -> None:
            client = make_client(UISettings(base_url=fake.base_url, model=fake.model,
                                            api_key="test-key"))
            served = ServedModels(lambda: served_models(client), ttl_s=30, retry_s=5,
                                  clock=lambda: now[0])
            try:
                assert not served.answering  # nothing asked yet
                assert await served.get() == [fake.model] and served.answering
                fake.stop()
                now[0] = 30
                assert await served.get(fresh=True) == [fake.model] and not served.answering
                fake.start()
                now[0] = 34  # a failure is not retried before retry_s: still not answering
                assert await served.get(fresh=True) == [fake.model] and not served.answering
                now[0] = 35
                assert await served.get(fresh=True) == [fake.model] and served.answering
            finally:
                await client.close()

        asyncio.run(main())
