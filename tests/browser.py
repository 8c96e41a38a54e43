"""Drive the chat UI in headless Chromium: start it against an API, send, read back, screenshot.

The browser tests' harness (against the fake server or a real one). Playwright is imported
only inside functions; Chromium is Debian's (`apt-get install chromium`), never a browser that
Playwright downloads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from persona.services import free_port, spawn, stop, wait_http
from persona.ui.launch import ui_command

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("PERSONA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# The reply to the last user message is complete: something answered it and the task is
# over. Chainlit shows its Stop button only after the thread's first message is stored (with a
# database that can come mid-answer), but disables the chat-settings button for as long as a
# task runs: that one is the signal where the page has it.
_REPLY_DONE_JS = """() => {
  const kinds = [...document.querySelectorAll('[data-step-type]')].map(s => s.dataset.stepType);
  const lastUser = kinds.lastIndexOf('user_message');
  const settings = document.querySelector('#chat-settings-open-modal');
  return lastUser >= 0 && kinds.slice(lastUser + 1).includes('assistant_message')
      && !document.querySelector('#stop-button') && !(settings && settings.disabled);
}"""
# While the reply is still running: the text of the newest assistant message after
# the last user message, once it has some.
_PARTIAL_JS = """() => {
  const steps = [...document.querySelectorAll('[data-step-type]')];
  const lastUser = steps.map(s => s.dataset.stepType).lastIndexOf('user_message');
  const replies = steps.slice(lastUser + 1).filter(s => s.dataset.stepType === 'assistant_message');
  if (lastUser < 0 || !replies.length || !document.querySelector('#stop-button')) return null;
  const content = replies[replies.length - 1].querySelector('.message-content');
  return (content && content.innerText.trim()) || null;
}"""
# Chainlit scrolls each new user message to the top; undo that for a picture of the whole chat.
_SCROLL_TOP_JS = """() => document.querySelectorAll('*').forEach(el => {
  if (el.scrollHeight > el.clientHeight && getComputedStyle(el).overflowY === 'auto') el.scrollTop = 0;
})"""
# Chainlit marks an error message with an alert icon instead of the avatar.
_ERROR = '[data-step-type="assistant_message"]:has(.lucide-circle-alert) .message-content'
_ANSWER = '[data-step-type="assistant_message"]:not(:has(.lucide-circle-alert)) .message-content'


@dataclass(frozen=True)
class ChatTarget:
    """The OpenAI-compatible API a UI talks to."""

    base_url: str
    model: str
    api_key: str | None = None
    card: str | None = None


@contextmanager
def running_ui(
    target: ChatTarget,
    *,
    app_root: str | os.PathLike,
    log_path: str | os.PathLike,
    port: int | None = None,
    timeout_s: float = 90.0,
    extra_env: dict[str, str] | None = None,
    db_url: str | None = None,
) -> Iterator[str]:
    """Serve the chat UI for `target` in a subprocess; yields its URL, stops it on exit.

    Its threads go to db_url (PERSONA_DB_URL), by default a SQLite file in app_root: never the
    tester's own chat database."""
    launch = ui_command(
        base_url=target.base_url, model=target.model, api_key=target.api_key,
        card=target.card, port=port or free_port(), app_root=app_root,
    )
    log = Path(log_path)
    database = {"PERSONA_DB_URL": db_url or f"sqlite+aiosqlite:///{launch.cwd / 'threads.db'}"}
    process = spawn(launch.argv, {**launch.env, **database, **(extra_env or {})}, log,
                    cwd=launch.cwd)
    try:
        wait_http(launch.url, process, log, timeout_s, what="the chat UI")
        yield launch.url
    finally:
        stop(process)


@contextmanager
def chromium() -> Iterator["Browser"]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class ChatPage:
    """One chat session in one browser page."""

    def __init__(self, page: "Page", screenshot_dir: Path | None = None, prefix: str = "chat"):
        self.page = page
        self.screenshot_dir = screenshot_dir
        self.prefix = prefix

    def open(self, url: str, timeout_s: float = 60.0) -> "ChatPage":
        """Load the UI and wait until the session has started (its greeting is shown)."""
        self.page.goto(url)
        self.page.locator('[data-step-type] .message-content').first.wait_for(timeout=timeout_s * 1000)
        return self

    def send(self, text: str, timeout_s: float = 30.0) -> None:
        """Type and submit; Chainlit drops a message sent before its websocket connects."""
        users_before = len(self.user_texts())
        self.page.locator("#chat-input").fill(text)
        submit = self.page.locator("#chat-submit:enabled")
        submit.wait_for(timeout=timeout_s * 1000)
        submit.click()
        self.page.wait_for_function(
            "n => document.querySelectorAll('[data-step-type=\"user_message\"]').length > n",
            arg=users_before, timeout=timeout_s * 1000,
        )

    def wait_reply(self, timeout_s: float = 120.0) -> None:
        self.page.wait_for_function(_REPLY_DONE_JS, timeout=timeout_s * 1000)

    def ask(self, text: str, timeout_s: float = 120.0) -> str:
        """Send, wait for the whole reply, return the last assistant message's text."""
        self.send(text)
        self.wait_reply(timeout_s)
        return self.assistant_texts()[-1]

    def partial_reply(self, timeout_s: float = 60.0) -> str:
        """The reply's text while it is still streaming (fails if it never shows mid-way)."""
        handle = self.page.wait_for_function(_PARTIAL_JS, timeout=timeout_s * 1000)
        return handle.json_value()

    def stop(self) -> None:
        self.page.locator("#stop-button").click()

    def _texts(self, selector: str) -> list[str]:
        return [text.strip() for text in self.page.locator(selector).all_inner_texts()]

    def user_texts(self) -> list[str]:
        return self._texts('[data-step-type="user_message"] .message-content')

    def assistant_texts(self) -> list[str]:
        """Every assistant message in order: greeting, answers, error notes."""
        return self._texts('[data-step-type="assistant_message"] .message-content')

    def answer_texts(self) -> list[str]:
        """Assistant messages that are not error notes."""
        return self._texts(_ANSWER)

    def error_texts(self) -> list[str]:
        return self._texts(_ERROR)

    def screenshot(self, name: str, from_top: bool = False) -> Path | None:
        """Save <dir>/<prefix>-<name>.png; from_top scrolls the chat back to its first message."""
        if self.screenshot_dir is None:
            return None
        if from_top:
            self.page.evaluate(_SCROLL_TOP_JS)
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / f"{self.prefix}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
