"""What a stored thread records about each answer, and the session rebuilt from it.

Each answer's step metadata holds what it was made from: `persona_id` (the chat profile),
`model` (the model id the request named) and `messages` (the exact list sent to the API,
system prompt included). `persona feedback export` reads these keys: keep them as they are (and finds the answer a
thumbs up/down rates with ui/store.py's FEEDBACK_ON_ANSWERS: the page rates Chainlit's run step,
the answer's parent).
Resuming a thread replays its answers into the history (ui/history.py's commit_turn, as the
chat did when they were given), so the next request carries the earlier turns. Pure functions
on Chainlit's thread and step dicts, no Chainlit import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from persona.ui.history import Message, commit_turn

PERSONA_ID = "persona_id"
MODEL = "model"
MESSAGES = "messages"
ANSWER = "assistant_message"


def answer_metadata(persona_id: str, model: str, messages: list[Message]) -> dict[str, Any]:
    """The metadata an answer's step is stored with."""
    return {PERSONA_ID: persona_id, MODEL: model,
            MESSAGES: [{"role": m["role"], "content": m["content"]} for m in messages]}


def _metadata(step: Mapping[str, Any]) -> dict[str, Any]:
    raw = step.get("metadata")
    if isinstance(raw, str):  # a data layer that leaves JSON as text
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def is_answer(step: Mapping[str, Any]) -> bool:
    """An answer of the model (not the greeting, an error note or a notice): an assistant
    message that records its request and says something."""
    metadata = _metadata(step)
    messages = metadata.get(MESSAGES)
    return (step.get("type") == ANSWER and not step.get("isError")
            and isinstance(metadata.get(PERSONA_ID), str)
            and isinstance(messages, list) and bool(messages)
            and isinstance(messages[-1], dict) and messages[-1].get("role") == "user"
            and bool((step.get("output") or "").strip()))


@dataclass(frozen=True)
class Resumed:
    """A thread's conversation as the chat keeps it, and the persona it was held with (None:
    no answer recorded one)."""

    persona_id: str | None = None
    model: str | None = None
    history: list[Message] = field(default_factory=list)


def resume(thread: Mapping[str, Any]) -> Resumed:
    """Replay the thread's answers in the order they were given."""
    steps = sorted(thread.get("steps") or [], key=lambda step: step.get("createdAt") or "")
    history: list[Message] = []
    persona_id = model = None
    for step in steps:
        if not is_answer(step):
            continue
        metadata = _metadata(step)
        asked = metadata[MESSAGES][-1].get("content")
        history = commit_turn(history, asked if isinstance(asked, str) else "", step["output"])
        persona_id = metadata[PERSONA_ID]
        model = metadata.get(MODEL) if isinstance(metadata.get(MODEL), str) else persona_id
    return Resumed(persona_id=persona_id, model=model, history=history)
