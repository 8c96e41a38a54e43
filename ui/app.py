"""Chainlit handlers: greet, stream answers, keep the history consistent whatever happens.

Run through ui/launch.py (it sets PERSONA_* and where Chainlit keeps its files).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

# Chainlit loads this file by path, so the repo root is not importable by default.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import chainlit as cl  # noqa: E402
from chainlit.config import SpontaneousFileUploadFeature, config  # noqa: E402
from chainlit.input_widget import Slider  # noqa: E402

from persona.paths import REPO_ROOT  # noqa: E402
from persona.ui import history, store, threads  # noqa: E402
from persona.ui.data_layer import PersonaDataLayer  # noqa: E402
from persona.ui.llm import (Reply, describe_error, make_client, served_models,  # noqa: E402
                            stream_reply)
from persona.ui.login import (LOCAL_USER, auth_secret, credentials_ok, keeps_threads,  # noqa: E402
                              signs_in_locally)
from persona.ui.persona_view import load_view  # noqa: E402
from persona.ui.profiles import (Offered, ServedModels, build_profiles, cards_by_id,  # noqa: E402
                                 pick, pick_or_add, view_for)
from persona.ui.settings import from_env  # noqa: E402

log = logging.getLogger("persona.ui")

SETTINGS = from_env()
# Cards for the other personas the server may list, by id.
CARDS = cards_by_id(REPO_ROOT / "cards")
VIEW = (load_view(SETTINGS.card_path, SETTINGS.model) if SETTINGS.card_path
        else view_for(SETTINGS.model, CARDS))
# The settings' max tokens where the server does not say its context; else half of it.
UNKNOWN_CONTEXT_CAP = max(4096, SETTINGS.max_tokens)

config.ui.name = VIEW.author
# Editing a sent message would re-run a turn that the history already holds.
config.features.edit_message = False
# The model reads text only.
config.features.spontaneous_file_upload = SpontaneousFileUploadFeature(enabled=False)
# Chainlit shows chainlit.md (in its app root) as the Readme; tell who this is.
(Path(config.root) / "chainlit.md").write_text(VIEW.readme, encoding="utf-8")

_client = None


def client():
    global _client
    if _client is None:
        _client = make_client(SETTINGS)
    return _client


SERVED = ServedModels(lambda: served_models(client()))
# Personas join and leave a live server: each page load and each new chat asks it afresh.
OFFERED = Offered()


async def profiles(fresh: bool = True):
    return build_profiles(await SERVED.get(fresh=fresh), SETTINGS.model, VIEW, CARDS)


def _user_id(user) -> str:
    return getattr(user, "identifier", "") or ""


def _for_the_page() -> bool:
    """Whether Chainlit asks for the profiles to hand the page its menu (its /project/settings
    route, on page load only); it also asks when a chat session starts, for profile overrides."""
    frame = sys._getframe(1)
    while frame is not None:
        if (frame.f_code.co_name == "project_settings"
                and frame.f_globals.get("__name__") == "chainlit.server"):
            return True
        frame = frame.f_back
    return False


def _starters(texts: list[str]) -> list[cl.Starter]:
    return [cl.Starter(label=text, message=text) for text in texts]


@cl.set_starters
async def starters(user=None, language=None):
    return _starters(VIEW.starters)


@cl.set_chat_profiles
async def chat_profiles(user=None, language=None):
    # With one profile Chainlit shows no menu; with several, one entry per served persona.
    offered = await profiles()
    if _for_the_page():
        OFFERED.given(_user_id(user), offered)
    return [
        cl.ChatProfile(
            name=profile.model, display_name=profile.view.author,
            markdown_description=profile.description, default=profile.default,
            # A list even when empty: otherwise the main persona's starters would show.
            starters=_starters(profile.view.starters),
        )
        for profile in offered
    ]


# Who is signed in (ui/login.py): the password's user, the local user, or nobody.
LOCAL_SIGN_IN = signs_in_locally(SETTINGS, config.run.host)
if SETTINGS.login_required or LOCAL_SIGN_IN:
    # Chainlit refuses to start with a login but no secret to sign its tokens.
    os.environ["CHAINLIT_AUTH_SECRET"] = auth_secret(os.environ)

if SETTINGS.login_required:
    @cl.password_auth_callback
    async def password_login(username: str, password: str):
        if credentials_ok(SETTINGS, username, password):
            return cl.User(identifier=SETTINGS.login_user, metadata={"provider": "password"})
        log.warning("refused a login as %r", username)
        return None

elif LOCAL_SIGN_IN:
    # No password on a loopback address: the login page signs the local user in by itself
    # (Chainlit's header login, whatever the headers), so threads are kept and listed.
    @cl.header_auth_callback
    async def local_login(headers):
        return cl.User(identifier=LOCAL_USER, metadata={"provider": "local"})

if keeps_threads(SETTINGS, config.run.host):
    try:
        DB_URL = store.database_url()
        store.prepare(DB_URL)
    except store.StoreError as error:
        raise SystemExit(f"persona ui: {error}") from None
    log.info("chat threads in %s", store.shown(DB_URL))

    @cl.data_layer
    def data_layer():
        return PersonaDataLayer(DB_URL)


async def _start_session(profile, past: list) -> None:
    """The session's persona, history, context and answer options, and its settings panel."""
    cl.user_session.set("persona_id", profile.model)
    cl.user_session.set("model", profile.model)
    cl.user_session.set("view", profile.view)
    cl.user_session.set("history", past)
    # The model's context (max_model_len): the slider stops at half of it, and every request
    # is fitted into it (history.fit_request).
    context = SERVED.context(profile.model)  # from the list the page was just given
    cap = history.answer_cap(context, UNKNOWN_CONTEXT_CAP)
    max_tokens = min(SETTINGS.max_tokens, cap)
    cl.user_session.set("context", context)
    cl.user_session.set("max_tokens_cap", cap)
    cl.user_session.set("options", {"temperature": SETTINGS.temperature, "max_tokens": max_tokens})
    await cl.ChatSettings(
        [
            Slider(id="temperature", label="Temperature", initial=SETTINGS.temperature,
                   min=0.0, max=2.0, step=0.1),
            Slider(id="max_tokens", label="Max tokens", initial=max_tokens,
                   min=16, max=cap, step=history.SLIDER_STEP),
        ]
    ).send()


async def _server_answering() -> bool:
    """Until the model server lists its models (it may be starting), or server_wait_s: a note
    says what the chat waits for, and then that it answers (a note removed instead would take
    what was typed meanwhile out of the message box).

    Whether it asked the server and got the list just now (then no need to ask again)."""
    if SERVED.answering or SETTINGS.server_wait_s <= 0:
        return False
    await SERVED.get(fresh=True)
    if SERVED.answering:
        return True
    note = cl.Message(content=f"Waiting for the model server at {SETTINGS.base_url}: it does not "
                              f"answer yet (still starting?). The chat opens once it does.",
                      author=VIEW.author)
    await note.send()
    deadline = time.monotonic() + SETTINGS.server_wait_s
    while not SERVED.answering and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        await SERVED.get(fresh=True)  # asks at most every few seconds while it fails
    if SERVED.answering:
        note.content = f"The model server at {SETTINGS.base_url} answers now."
        await note.update()
        return True
    note.content = (f"The model server at {SETTINGS.base_url} did not answer within "
                    f"{SETTINGS.server_wait_s:.0f} s; messages will fail until it is back.")
    await note.update()
    return False


@cl.on_chat_start
async def on_chat_start():
    # Chainlit disables the message box while a task runs: nothing typed before the greeting
    # is sent into a session that is not ready (it would be lost).
    await cl.context.emitter.task_start()
    try:
        await _open_chat()
    finally:
        await cl.context.emitter.task_end()


async def _open_chat() -> None:
    # The list the wait just got stands; else the server is asked again, since "New chat"
    # does not reload the page: only this way a persona added or removed since is seen.
    offered = await profiles(fresh=not await _server_answering())
    if OFFERED.stale(_user_id(cl.user_session.get("user")), offered):
        # A persona was added to or removed from the server since the page got its menu: the
        # page reloads (Chainlit's own "reload" event) and fetches the menu again.
        await cl.context.emitter.emit("reload", {})
        return
    profile = pick(offered, cl.user_session.get("chat_profile"))
    await _start_session(profile, [])
    # Chainlit shows starters only while the chat has no user or assistant message,
    # so next to starters the greeting goes out as a system message.
    view = profile.view
    kind = "system_message" if view.starters else "assistant_message"
    await cl.Message(content=view.greeting, author=view.author, type=kind).send()


@cl.on_chat_resume
async def on_chat_resume(thread):
    """A thread opened from the sidebar (after a restart too): its persona and its history
    again, from the answers it stored; Chainlit shows its messages."""
    resumed = threads.resume(thread)
    offered = await profiles()
    if resumed.persona_id is None:  # no answer yet: the profile the thread was opened with
        profile = pick(offered, cl.user_session.get("chat_profile"))
    else:  # also when that persona has left the server: its requests then say so
        profile = pick_or_add(offered, resumed.persona_id, CARDS)
    await _start_session(profile, resumed.history)
    if resumed.model:
        cl.user_session.set("model", resumed.model)


@cl.on_settings_update
async def on_settings_update(values: dict):
    options = dict(cl.user_session.get("options") or {})
    try:
        options["temperature"] = min(2.0, max(0.0, float(values["temperature"])))
        cap = cl.user_session.get("max_tokens_cap") or UNKNOWN_CONTEXT_CAP
        options["max_tokens"] = min(cap, max(1, int(values["max_tokens"])))
    except (KeyError, TypeError, ValueError):
        log.warning("ignored chat settings %r", values)
        return
    cl.user_session.set("options", options)


def _commit(user_text: str, reply: Reply) -> None:
    past = cl.user_session.get("history") or []
    cl.user_session.set("history", history.commit_turn(past, user_text, reply.text))


@cl.on_message
async def on_message(message: cl.Message):
    user_text = message.content or ""
    options = cl.user_session.get("options") or {}
    model = cl.user_session.get("model") or SETTINGS.model
    persona_id = cl.user_session.get("persona_id") or model
    view = cl.user_session.get("view") or VIEW
    answer = cl.Message(content="", author=view.author)
    reply = Reply()
    failure: BaseException | None = None
    try:
        messages, max_tokens = history.fit_request(
            cl.user_session.get("history") or [], user_text, view.system_prompt,
            options.get("max_tokens", SETTINGS.max_tokens), cl.user_session.get("context"),
        )
        # Stored with the answer: what it was made from (the feedback export reads it).
        answer.metadata = threads.answer_metadata(persona_id, model, messages)
        await stream_reply(
            client(),
            model,
            messages,
            max_tokens=max_tokens,
            temperature=options.get("temperature", SETTINGS.temperature),
            on_token=answer.stream_token,
            reply=reply,
        )
    except asyncio.CancelledError:
        # The Stop button: keep what the user already saw, in the UI and the history.
        _commit(user_text, reply)
        if reply.text:
            await answer.update()
        raise
    except Exception as error:  # every failure must end as a visible message
        log.warning("answer failed: %s: %s", type(error).__name__, error)
        failure = error
    _commit(user_text, reply)
    if reply.text:
        await answer.send()
    if failure is not None:
        await cl.ErrorMessage(
            content=describe_error(failure, SETTINGS.base_url, model), author=view.author
        ).send()
    elif not reply.text:
        await cl.Message(
            content="(The model returned an empty answer. 模型没有返回内容。)", author=view.author
        ).send()
