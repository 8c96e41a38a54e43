"""The conversation the model sees: strictly alternating user/assistant turns.

A turn is committed whole or not at all, so a failed or stopped answer can never
leave two user messages in a row. Pure functions on lists of dicts, no I/O.
"""

from __future__ import annotations

Message = dict[str, str]

# Oldest turns are dropped beyond this so a long chat does not overflow the
# model's context window (a 135M model's answers don't need more).
MAX_TURNS = 16


def is_alternating(history: list[Message]) -> bool:
    """user, assistant, user, assistant, ... and nothing else."""
    expected = ("user", "assistant")
    return all(
        message.get("role") == expected[index % 2] and isinstance(message.get("content"), str)
        for index, message in enumerate(history)
    ) and len(history) % 2 == 0


def request_messages(
    history: list[Message],
    user_text: str,
    system_prompt: str | None = None,
    max_turns: int = MAX_TURNS,
) -> list[Message]:
    """What to send for a new user message: system prompt, recent turns, the message."""
    if not is_alternating(history):
        raise ValueError("history must alternate user/assistant and end with an assistant turn")
    recent = history[-2 * (max_turns - 1):] if max_turns > 1 else []
    messages: list[Message] = []
    if system_prompt and system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    messages.extend(dict(message) for message in recent)
    messages.append({"role": "user", "content": user_text})
    return messages


def commit_turn(history: list[Message], user_text: str, answer: str) -> list[Message]:
    """The history after one exchange.

    A partial answer (stream dropped, user pressed Stop) is kept: the model
    should see what the user saw. With no answer text at all the user's message
    is left out too, rather than leaving it without a reply.
    """
    if not answer.strip():
        return list(history)
    return [
        *history,
        {"role": "user", "content": user_text},
        {"role": "assistant", "content": answer},
    ]
