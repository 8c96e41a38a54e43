"""The chat UI in a real browser: Chainlit as a subprocess, Debian Chromium, an OpenAI-compatible API.

By default the API is tests/fake_openai.py. To drive the same UI against another server,
parametrize `chat_target` indirectly with a ChatTarget, or with the name of a fixture that
yields something with base_url, model, api_key and card_path (conftest's `persona_api`):

    @pytest.mark.parametrize("chat_target", ["persona_api"], indirect=True)
    def test_real_server_answers(chat):
        assert "小葱" in chat.ask("你是谁")

Each `chat` is a fresh page, so a fresh Chainlit session with an empty history.

Screenshots and the Chainlit log go to tests/artifacts/ (PERSONA_TEST_ARTIFACTS overrides).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from browser import CHROMIUM, ChatPage, ChatTarget, chromium, running_ui
from fake_openai import FAKE_MODEL, LONG_ANSWER, FakeOpenAI, answer_for
from persona.card import load_card
from persona.paths import REPO_ROOT
from persona.services import open_local
from recording_proxy import RecordingProxy

pytest.importorskip("playwright.sync_api", reason="playwright is not installed in this env")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no browser at {CHROMIUM}: apt-get install chromium (or set PERSONA_CHROMIUM)",
    ),
]

ARTIFACTS = Path(os.environ.get("PERSONA_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
DEFAULT_CARD = REPO_ROOT / "cards" / "xiaocong.yaml"
API_KEY = "test-key"
# The UI must ignore these (Chainlit rewrites OPENAI_API_KEY under CI=true anyway).
MISLEADING_ENV = {"OPENAI_API_KEY": "sk-wrong", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_server():
    with FakeOpenAI(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def fake(fake_server):
    """The fake API, back to normal echo answers for each test."""
    if not fake_server.running:  # a test that stopped it failed half-way
        fake_server.start()
    fake_server.mode = "echo"
    fake_server.extra_models = []
    fake_server.token_delay_s = FakeOpenAI.TOKEN_DELAY_S
    return fake_server


def _target_of(endpoint) -> ChatTarget:
    """The API of a served-persona fixture, with the persona's card."""
    card = getattr(endpoint, "card_path", None) or getattr(endpoint, "card", None)
    return ChatTarget(base_url=endpoint.base_url, model=endpoint.model,
                      api_key=endpoint.api_key, card=None if card is None else str(card))


@pytest.fixture(scope="module")
def chat_target(request) -> ChatTarget:
    """The API the UI talks to: the fake server unless parametrized (indirect=True)."""
    param = getattr(request, "param", None)
    if isinstance(param, ChatTarget):
        return param
    if isinstance(param, str):  # a fixture giving an endpoint
        return _target_of(request.getfixturevalue(param))
    fake = request.getfixturevalue("fake_server")
    return ChatTarget(base_url=fake.base_url, model=fake.model, api_key=API_KEY,
                      card=str(DEFAULT_CARD))


@pytest.fixture(scope="module")
def chat_ui(chat_target, tmp_path_factory, request) -> str:
    """The UI's URL: one Chainlit process per module (and per target)."""
    log = artifacts_dir() / f"chainlit-{request.module.__name__}.log"
    extra_env = dict(MISLEADING_ENV)
    if chat_target.model != FAKE_MODEL:  # a real model answers greedily, so a test can expect words
        extra_env["PERSONA_TEMPERATURE"] = "0"
    with running_ui(chat_target, app_root=tmp_path_factory.mktemp("chainlit-root"),
                    log_path=log, extra_env=extra_env) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


@pytest.fixture
def chat(browser, chat_ui, request) -> ChatPage:
    """A fresh chat session (new page, new history), greeted and ready."""
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    chat = ChatPage(page, artifacts_dir(), prefix=request.node.name.replace("/", "_"))
    try:
        chat.open(chat_ui)
        yield chat
    finally:
        chat.screenshot("end", from_top=True)
        page.close()


def user(text: str) -> dict:
    return {"role": "user", "content": text}


# Every request opens with the card's default system prompt (PersonaCard.default_system_prompt).
SYSTEM = {"role": "system", "content": load_card(DEFAULT_CARD).default_system_prompt()}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# -- tests -----------------------------------------------------------------------------------
def test_greets_by_the_cards_name(chat):
    greeting = chat.assistant_texts()[0]
    assert "小葱" in greeting and "Xiaocong" in greeting
    assert chat.page.title() == "小葱 · Xiaocong"
    chat.screenshot("greeting")


def test_streams_answers_and_sends_the_whole_history(chat, fake):
    # Slowly: Chainlit shows the Stop button (the sign that a reply is running) only once the
    # new thread is stored, which under load came after the whole 0.4 s echo had streamed.
    fake.token_delay_s = 0.3
    chat.send("你是谁")
    partial = chat.partial_reply()
    chat.wait_reply()
    first = answer_for([user("你是谁")])
    assert chat.answer_texts()[-1] == first
    # Seen mid-way: token by token, not in one piece at the end.
    assert first.startswith(partial) and partial != first
    chat.screenshot("first-answer")

    fake.token_delay_s = FakeOpenAI.TOKEN_DELAY_S
    second = chat.ask("Who made you?")
    assert second == answer_for([user("你是谁"), assistant(first), user("Who made you?")])
    assert fake.received[-1] == [SYSTEM, user("你是谁"), assistant(first), user("Who made you?")]
    assert fake.requests[-1]["max_tokens"] == 512 and fake.requests[-1]["stream"] is True
    assert chat.error_texts() == []
    chat.screenshot("second-answer")


def test_http_500_shows_an_error_and_the_next_message_works(chat, fake):
    first = chat.ask("hello")
    fake.mode = "error"
    note = chat.ask("this one fails")
    assert chat.error_texts() == [note]
    assert "HTTP 500" in note and "fake internal error" in note
    chat.screenshot("http-500")

    fake.mode = "echo"
    chat.ask("and now?")
    # The failed question got no answer, so it is not in the history either.
    assert fake.received[-1] == [SYSTEM, user("hello"), assistant(first), user("and now?")]


def test_server_down_shows_an_error_and_the_chat_resumes_when_it_is_back(chat, fake):
    first = chat.ask("hello")
    fake.stop()
    note = chat.ask("anyone there?")
    assert "Cannot reach the model server" in note and fake.base_url in note
    chat.screenshot("server-down")

    fake.start()
    answer = chat.ask("back?")
    assert answer == answer_for([user("hello"), assistant(first), user("back?")])
    assert fake.received[-1] == [SYSTEM, user("hello"), assistant(first), user("back?")]


def test_a_new_chat_waits_for_a_server_that_is_starting(browser, fake, tmp_path):
    fake.stop()  # not up yet, as while `persona up` starts vLLM
    with _page_on_own_ui(browser, fake, tmp_path, "starting") as chat:
        note = chat.assistant_texts()[0]
        assert "Waiting for the model server" in note and fake.base_url in note, note
        chat.page.locator("#chat-input").fill("anyone?")
        # The message box takes text but sends nothing before the session is ready.
        assert chat.page.locator("#chat-submit").is_disabled()
        chat.screenshot("waiting")
        fake.start()
        _wait_for_text(chat.page, "小葱")  # the greeting, once the server answers
        chat.page.locator("#chat-submit:enabled").wait_for(timeout=30_000)
        assert "answers now" in chat.assistant_texts()[0]
        chat.page.locator("#chat-submit").click()  # what was typed while it waited is kept
        chat.wait_reply()
        assert chat.answer_texts()[-1] == answer_for([user("anyone?")])


def test_dropped_stream_keeps_the_partial_answer_and_says_so(chat, fake):
    fake.mode = "drop"
    note = chat.ask("tell me everything")
    partial = chat.answer_texts()[-1]
    full = answer_for([user("tell me everything")])
    assert partial and full.startswith(partial) and partial != full
    assert "cut off" in note and note == chat.error_texts()[-1]
    chat.screenshot("dropped-stream")

    fake.mode = "echo"
    chat.ask("go on")
    assert fake.received[-1] == [SYSTEM, user("tell me everything"), assistant(partial), user("go on")]


def test_stop_button_keeps_what_was_shown_in_the_history(chat, fake):
    fake.mode = "long"
    chat.send("talk for a while")
    chat.partial_reply()
    chat.stop()
    chat.wait_reply()
    chat.screenshot("stopped")
    shown = [text for text in chat.answer_texts() if LONG_ANSWER.startswith(text)]
    assert len(shown) == 1 and shown[0] != LONG_ANSWER

    fake.mode = "echo"
    chat.ask("stop there")
    sent = fake.received[-1]
    # What the model is told it said is exactly what the user saw.
    assert sent == [SYSTEM, user("talk for a while"), assistant(sent[2]["content"]), user("stop there")]
    assert sent[2]["content"].strip() == shown[0]


def test_chat_settings_change_temperature_and_max_tokens(chat, fake):
    chat.page.locator("#chat-settings-open-modal").click()
    chat.page.locator('#temperature [role="slider"]').press("Home")
    max_tokens = chat.page.locator('#max_tokens [role="slider"]')
    max_tokens.press("Home")
    max_tokens.press("ArrowRight")
    chat.screenshot("settings")
    chat.page.locator("#confirm").click()
    chat.ask("你是谁")
    assert (fake.requests[-1]["temperature"], fake.requests[-1]["max_tokens"]) == (0.0, 32)


@contextmanager
def _page_on_own_ui(browser, fake, tmp_path, prefix: str, card: Path = DEFAULT_CARD):
    """A chat UI of the test's own on the fake server, and one page open on it."""
    target = ChatTarget(base_url=fake.base_url, model=fake.model, api_key=API_KEY, card=str(card))
    with running_ui(target, app_root=tmp_path / "root",
                    log_path=artifacts_dir() / f"chainlit-{prefix}.log") as url:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        try:
            yield ChatPage(page, artifacts_dir(), prefix=prefix).open(url)
        finally:
            page.close()


def test_card_starters_greeting_and_system_prompt(browser, fake, tmp_path):
    card = tmp_path / "testbot.yaml"
    card.write_text(
        "id: testbot\n"
        "name: {zh: 测试机器人, en: Testbot}\n"
        "creator: {zh: 测试团队, en: the Test Team}\n"
        'greeting: {zh: "你好，我是测试机器人！", en: "Hello, I am Testbot!"}\n'
        'starters: ["你是谁？", "Who made you?"]\n'
        "system_prompt: You are Testbot.\n",
        encoding="utf-8",
    )
    with _page_on_own_ui(browser, fake, tmp_path, "starters", card) as chat:
        page = chat.page
        starters = page.locator("#starters button")
        starters.first.wait_for()
        assert starters.all_inner_texts() == ["你是谁？", "Who made you?"]
        assert "你好，我是测试机器人！" in page.locator(".message-content").first.inner_text()
        chat.screenshot("welcome")
        starters.first.click()
        chat.wait_reply()
        assert chat.user_texts() == ["你是谁？"]
        assert fake.received[-1] == [{"role": "system", "content": "You are Testbot."}, user("你是谁？")]
        chat.screenshot("after-starter")


def _wait_for_text(page, text: str, timeout_s: float = 60.0) -> None:
    page.wait_for_function(
        "t => [...document.querySelectorAll('.message-content')].some(e => e.innerText.includes(t))",
        arg=text, timeout=timeout_s * 1000,
    )


def _choose(page, model: str) -> None:
    """Pick a model in the open profile menu, and wait until the menu is gone."""
    page.locator(f'[data-test="select-item:{model}"]').click()
    page.locator('[role="listbox"]').wait_for(state="detached")


def _switch_profile(chat: ChatPage, model: str, confirm: bool) -> None:
    chat.page.locator("#chat-profiles").click()
    _choose(chat.page, model)
    if confirm:  # a chat with messages asks before starting a new one
        chat.page.locator("#new-chat-dialog #confirm").click()


def test_profiles_offer_every_served_persona(browser, fake, tmp_path):
    # One server, three models: the UI's own, one with a card in cards/, one without.
    fake.extra_models = ["lingxi", "mystery-7b"]
    lingxi = load_card(REPO_ROOT / "cards" / "lingxi.yaml")
    with _page_on_own_ui(browser, fake, tmp_path, "profiles") as chat:
        page = chat.page
        assert "小葱" in chat.assistant_texts()[0]
        assert page.locator("#chat-profiles").inner_text() == "小葱 · Xiaocong"
        page.locator("#chat-profiles").click()
        items = page.locator('[data-test^="select-item:"]')
        items.first.wait_for()
        assert items.all_inner_texts() == ["小葱 · Xiaocong", "灵犀 · Lingxi", "mystery-7b"]
        chat.screenshot("menu")
        _choose(page, fake.model)  # the current one: no new chat

        chat.ask("hi")
        assert fake.requests[-1]["model"] == fake.model

        # The persona with a card: its greeting, its starters, its model id, a fresh history.
        _switch_profile(chat, "lingxi", confirm=True)
        _wait_for_text(page, lingxi.greeting.zh)
        starters = page.locator("#starters button")
        starters.first.wait_for()
        assert starters.all_inner_texts() == lingxi.starters
        assert page.locator("#chat-profiles").inner_text() == "灵犀 · Lingxi"
        chat.screenshot("lingxi")
        starters.first.click()
        chat.wait_reply()
        assert fake.requests[-1]["model"] == "lingxi"
        assert fake.received[-1] == [{"role": "system", "content": lingxi.default_system_prompt()},
                                     user(lingxi.starters[0])]

        # A model with no card: named by its id, no starters (not the main persona's).
        _switch_profile(chat, "mystery-7b", confirm=True)
        _wait_for_text(page, "mystery-7b")
        assert page.locator("#starters").count() == 0
        answer = chat.ask("hello")
        assert answer == answer_for([user("hello")])
        assert fake.requests[-1]["model"] == "mystery-7b"
        chat.screenshot("neutral")


def test_the_menu_follows_personas_added_and_removed_on_the_server(browser, fake, tmp_path):
    # A live server: lingxi is added while the page is open, then removed during its chat.
    lingxi = load_card(REPO_ROOT / "cards" / "lingxi.yaml")
    with _page_on_own_ui(browser, fake, tmp_path, "live") as chat:
        page = chat.page
        assert page.locator("#chat-profiles").count() == 0  # one persona: no menu
        chat.ask("hi")

        fake.extra_models = ["lingxi"]  # `persona add` on the server
        page.locator("#new-chat-button").click()
        page.locator("#new-chat-dialog #confirm").click()
        page.locator("#chat-profiles").wait_for(timeout=60_000)  # the page reloaded its menu
        assert page.locator("#chat-profiles").inner_text() == "小葱 · Xiaocong"
        _switch_profile(chat, "lingxi", confirm=False)
        _wait_for_text(page, lingxi.greeting.zh)
        assert chat.ask("你好") == answer_for([
            {"role": "system", "content": lingxi.default_system_prompt()}, user("你好")])
        chat.screenshot("added")

        fake.extra_models = []  # `persona remove lingxi`
        chat.send("你是谁？")
        chat.wait_reply()
        error = chat.error_texts()[-1]
        assert "does not serve lingxi (HTTP 404)" in error and "start a new chat" in error
        chat.screenshot("removed")
        page.locator("#new-chat-button").click()
        page.locator("#new-chat-dialog #confirm").click()
        page.wait_for_function("() => !document.querySelector('#chat-profiles')", timeout=60_000)
        _wait_for_text(page, "小葱")


def _status(url: str) -> int:
    try:
        with open_local(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_password_login_guards_the_chat(browser, fake, tmp_path):
    target = ChatTarget(base_url=fake.base_url, model=fake.model, api_key=API_KEY,
                        card=str(DEFAULT_CARD))
    login = {"PERSONA_UI_USER": "ada", "PERSONA_UI_PASSWORD": "open sesame"}
    with running_ui(target, app_root=tmp_path / "root", extra_env=login,
                    log_path=artifacts_dir() / "chainlit-login.log") as url:
        # The server itself refuses an anonymous client, not only the page.
        assert _status(f"{url}/project/settings") == 401
        assert _status(f"{url}/auth/config") == 200

        page = browser.new_page(viewport={"width": 1000, "height": 800})
        chat = ChatPage(page, artifacts_dir(), prefix="login")
        page.goto(url)
        page.locator("#email").wait_for(timeout=60_000)
        assert page.url.endswith("/login")
        page.locator("#email").fill("ada")
        page.locator("#password").fill("wrong")
        page.locator('button[type="submit"]').click()
        # Chainlit's own words for a refused password (its translation keys vary by release).
        page.get_by_text(re.compile(r"unable to sign in|sign in failed", re.I)).wait_for()
        assert page.url.endswith("/login") and not chat.assistant_texts()
        chat.screenshot("refused")

        page.locator("#password").fill("open sesame")
        page.locator('button[type="submit"]').click()
        page.locator("[data-step-type] .message-content").first.wait_for(timeout=60_000)
        assert "小葱" in chat.assistant_texts()[0]
        assert chat.ask("你是谁") == answer_for([user("你是谁")])
        chat.screenshot("logged-in")
        page.close()


# -- the real thing: Chainlit on the trained persona served by vLLM ---------------------------
@pytest.fixture(scope="module")
def recorded_persona_api(persona_api):
    """persona_api behind a recording proxy: what the UI really sent and got back."""
    with RecordingProxy(persona_api.base_url) as proxy:
        endpoint = dataclasses.replace(persona_api, base_url=proxy.base_url)
        endpoint.proxy = proxy
        yield endpoint


@pytest.mark.parametrize("chat_target", ["recorded_persona_api"], indirect=True)
def test_real_persona_answers_in_the_browser(chat, default_card, recorded_persona_api):
    proxy = recorded_persona_api.proxy
    first = chat.ask("你是谁")
    assert default_card.name.zh in first, first
    # Streamed: the server sent the answer in several pieces, and that is what the page shows.
    streamed = proxy.streamed_texts()[-1]
    assert len(proxy.streamed_pieces()[-1]) > 1 and proxy.chat_requests()[-1]["stream"] is True
    assert streamed.strip() == first

    second = chat.ask("Who created you?")
    assert default_card.creator.en in second, second
    assert chat.user_texts() == ["你是谁", "Who created you?"]
    # The history reached the server: the first exchange, exactly as streamed, then the question.
    system = [{"role": "system", "content": default_card.default_system_prompt()}]
    assert proxy.chat_requests()[-1]["messages"] == [
        *system, user("你是谁"), assistant(streamed), user("Who created you?")]
    assert chat.error_texts() == []
    chat.screenshot("real-exchange", from_top=True)


# -- threads: kept in the chat's database, resumed, rated -------------------------------------
# PERSONA_UPDATE_DOCS=1 also saves the pictures the README shows (docs/chat-*.png).
DOCS = REPO_ROOT / "docs" if os.environ.get("PERSONA_UPDATE_DOCS") == "1" else None


def _rows(db_url: str, sql: str) -> list[dict]:
    """Rows of the chat's database (SQLite or PostgreSQL), read as the feedback export would."""
    from persona.ui.store import fetch, run_sync

    return run_sync(fetch(db_url, sql))  # in a thread of its own: Playwright runs an event loop here


def _answer_metadata(db_url: str) -> list[dict]:
    from persona.ui.store import json_value

    steps = _rows(db_url, """SELECT metadata FROM steps WHERE type = 'assistant_message'
                             ORDER BY "createdAt" """)
    return [meta for meta in (json_value(s["metadata"]) or {} for s in steps) if "messages" in meta]


def _default_target(fake) -> ChatTarget:
    return ChatTarget(base_url=fake.base_url, model=fake.model, api_key=API_KEY,
                      card=str(DEFAULT_CARD))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_conversation_survives_a_restart_and_resumes_from_the_sidebar(browser, fake, tmp_path,
                                                                        database, request):
    if database == "sqlite":
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'threads.db'}"
    else:  # PERSONA_DB_URL as deploy/compose.yaml sets it, on a throw-away server
        db_url = request.getfixturevalue("postgres_server").create_database("chat_restart")
    with running_ui(_default_target(fake), app_root=tmp_path / "before", db_url=db_url,
                    log_path=artifacts_dir() / "chainlit-threads-before.log") as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        chat = ChatPage(page, artifacts_dir(), prefix="threads").open(url)
        first = chat.ask("你是谁")
        second = chat.ask("Who made you?")
        assert not page.url.endswith("/login")  # the local user, signed in without a prompt
        page.locator("#new-chat-button").click()  # a second thread
        page.locator("#new-chat-dialog #confirm").click()
        page.wait_for_function("""() => !document.querySelector('[data-step-type="user_message"]')
            && document.querySelector('[data-step-type] .message-content')""")  # greeted anew
        chat.ask("讲个笑话")
        page.close()
    # Each answer was stored with what it was made from, the exact request included.
    stored = _answer_metadata(db_url)
    assert [m["messages"] for m in stored] == fake.received[-3:]
    assert {(m["persona_id"], m["model"]) for m in stored} == {(fake.model, fake.model)}

    # A new UI process on the same database: the thread is in the sidebar, and resumes.
    with running_ui(_default_target(fake), app_root=tmp_path / "after", db_url=db_url,
                    log_path=artifacts_dir() / "chainlit-threads-after.log") as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        chat = ChatPage(page, artifacts_dir(), prefix="threads").open(url)
        listed = page.locator("#thread-history a", has_text="你是谁")
        listed.wait_for(timeout=60_000)
        assert page.locator("#thread-history a").all_inner_texts() == ["讲个笑话", "你是谁"]
        chat.screenshot("sidebar")
        listed.click()
        page.wait_for_function(
            "n => document.querySelectorAll('[data-step-type=\"user_message\"]').length >= n",
            arg=2, timeout=60_000)
        assert chat.user_texts() == ["你是谁", "Who made you?"]
        assert chat.answer_texts()[-2:] == [first, second]
        if DOCS:
            ChatPage(page, DOCS, prefix="chat").screenshot("threads", from_top=True)
        third = chat.ask("And before that?")
        history = [SYSTEM, user("你是谁"), assistant(first), user("Who made you?"),
                   assistant(second), user("And before that?")]
        assert fake.received[-1] == history
        assert third == answer_for(history[1:])
        chat.screenshot("resumed")
        page.close()
    assert _answer_metadata(db_url)[-1]["messages"] == history


def test_a_thread_resumed_after_a_restart_reaches_the_real_model_with_its_history(
        browser, recorded_persona_api, default_card, tmp_path):
    proxy = recorded_persona_api.proxy
    target = _target_of(recorded_persona_api)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'threads.db'}"
    with running_ui(target, app_root=tmp_path / "before", db_url=db_url,
                    log_path=artifacts_dir() / "chainlit-real-threads-before.log") as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        first = ChatPage(page, artifacts_dir(), prefix="real-threads").open(url).ask("你是谁")
        page.close()
    streamed = proxy.streamed_texts()[-1]
    assert streamed.strip() == first and default_card.name.zh in first, first

    with running_ui(target, app_root=tmp_path / "after", db_url=db_url,
                    log_path=artifacts_dir() / "chainlit-real-threads-after.log") as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        chat = ChatPage(page, artifacts_dir(), prefix="real-threads").open(url)
        listed = page.locator("#thread-history a", has_text="你是谁")
        listed.wait_for(timeout=60_000)
        listed.click()
        page.wait_for_function(
            "() => document.querySelectorAll('[data-step-type=\"user_message\"]').length >= 1",
            timeout=60_000)
        second = chat.ask("Who created you?")
        chat.screenshot("resumed", from_top=True)
        page.close()
    # What vLLM received after the restart: the stored exchange, exactly as it had streamed.
    system = [{"role": "system", "content": default_card.default_system_prompt()}]
    assert proxy.chat_requests()[-1]["messages"] == [
        *system, user("你是谁"), assistant(streamed), user("Who created you?")]
    assert proxy.streamed_texts()[-1].strip() == second
    assert default_card.creator.en in second, second


def test_thumbs_down_with_a_comment_is_stored_with_the_answer(browser, fake, tmp_path):
    db = tmp_path / "threads.db"
    with running_ui(_default_target(fake), app_root=tmp_path / "root",
                    db_url=f"sqlite+aiosqlite:///{db}",
                    log_path=artifacts_dir() / "chainlit-feedback.log") as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        chat = ChatPage(page, artifacts_dir(), prefix="feedback").open(url)
        chat.ask("你是谁")
        page.locator(".negative-feedback-off").last.click()
        comment = page.locator('[role="dialog"] textarea')
        comment.fill("Too short: say who made you.")
        chat.screenshot("dialog")
        if DOCS:
            ChatPage(page, DOCS, prefix="chat").screenshot("feedback")
        page.locator("#submit-feedback").click()
        page.locator(".negative-feedback-on").wait_for(timeout=30_000)
        page.locator('[role="dialog"]').wait_for(state="detached")
        chat.screenshot("rated")
        page.close()
    from persona.ui.store import FEEDBACK_ON_ANSWERS
    from persona.ui.threads import is_answer

    db_url = f"sqlite+aiosqlite:///{db}"
    (feedback,) = _rows(db_url, "SELECT * FROM feedbacks")
    assert (feedback["value"], feedback["comment"]) == (0, "Too short: say who made you.")
    # The page rates Chainlit's run step; the answer is its child, with what it was made from.
    (rated,) = [row for row in _rows(db_url, FEEDBACK_ON_ANSWERS) if is_answer(row)]
    assert (rated["feedbackId"], rated["userIdentifier"]) == (feedback["id"], "local")
    assert json.loads(rated["metadata"])["messages"] == fake.received[-1]
    assert rated["output"] == answer_for([user("你是谁")])


def _seed_two_users(db: Path) -> None:
    """Ada's thread and Bob's, as Chainlit stores them (the schema from ui/store.py)."""
    from persona.ui import store

    store.prepare(f"sqlite+aiosqlite:///{db}")
    at = "2026-01-01T00:00:00Z"
    with sqlite3.connect(db) as connection:
        for name in ("ada", "bob"):
            connection.execute('INSERT INTO users ("id", "identifier", "metadata", "createdAt") '
                               "VALUES (?, ?, '{}', ?)", (f"u-{name}", name, at))
            connection.execute('INSERT INTO threads ("id", "createdAt", "name", "userId", '
                               '"userIdentifier", "tags", "metadata") VALUES (?, ?, ?, ?, ?, '
                               "'[]', '{}')", (f"t-{name}", at, f"{name}'s", f"u-{name}", name))
            connection.execute('INSERT INTO steps ("id", "name", "type", "threadId", "streaming", '
                               '"output", "createdAt") VALUES (?, ?, ?, ?, 0, ?, ?)',
                               (f"s-{name}", name, "user_message", f"t-{name}", "secret", at))


def _call(url: str, method: str = "GET", body: dict | None = None,
          cookie: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Cookie": cookie})
    try:
        with open_local(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, {}


def test_a_user_cannot_open_another_users_thread_by_its_id(fake, tmp_path):
    db = tmp_path / "threads.db"
    _seed_two_users(db)
    login = {"PERSONA_UI_USER": "bob", "PERSONA_UI_PASSWORD": "pw"}
    with running_ui(_default_target(fake), app_root=tmp_path / "root", extra_env=login,
                    db_url=f"sqlite+aiosqlite:///{db}",
                    log_path=artifacts_dir() / "chainlit-authors.log") as url:
        form = urllib.parse.urlencode({"username": "bob", "password": "pw"}).encode()
        with open_local(urllib.request.Request(f"{url}/login", data=form), timeout=30) as answer:
            cookie = "; ".join(header.split(";")[0] for header in answer.headers.get_all("set-cookie"))
        assert _call(f"{url}/project/thread/t-bob", cookie=cookie)[0] == 200
        assert _call(f"{url}/project/thread/t-ada", cookie=cookie)[0] == 401
        assert _call(f"{url}/project/thread/t-ada")[0] == 401  # no login at all
        status, listed = _call(f"{url}/project/threads", "POST", cookie=cookie,
                               body={"pagination": {"first": 20}, "filter": {}})
        assert status == 200 and [thread["id"] for thread in listed["data"]] == ["t-bob"]
        assert _call(f"{url}/project/thread", "DELETE", {"threadId": "t-ada"}, cookie)[0] == 401
    kept = _rows(f"sqlite+aiosqlite:///{db}", "SELECT id FROM threads ORDER BY id")
    assert [row["id"] for row in kept] == ["t-ada", "t-bob"]
