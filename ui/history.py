"""The conversation the model sees: strictly alternating user/assistant turns, within the
model's context.

A turn is committed whole or not at all, so a failed or stopped answer can never
leave two user messages in a row. A request fits the served context (vLLM's max_model_len):
prompt plus max_tokens, with the prompt's tokens estimated from above (no tokenizer here), the
answer's room clamped first and then the oldest turns dropped. Pure functions on lists of
dicts, no I/O.
"""

from __future__ import annotations

Message = dict[str, str]

# Oldest turns are dropped beyond this, and beyond what fits the context (fit_request).
MAX_TURNS = 16
# The tokens a message costs besides its text (ChatML: <|im_start|>role\n ... <|im_end|>\n), and
# the generation prompt (<|im_start|>assistant\n, a BOS): more than any template here adds.
MESSAGE_OVERHEAD = 8
# Never ask for fewer than this to make room: a prompt that leaves less is the server's to refuse.
MIN_ANSWER_TOKENS = 16
SLIDER_STEP = 16


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


def estimate_tokens(text: str) -> int:
    """At least the tokens of `text` for every base persona serves: byte-level BPE (SmolLM2,
    Qwen2.5) and SentencePiece with byte fallback (InternLM2) spend at most one token per UTF-8
    byte. Generous for English (about four bytes a token), close for Chinese."""
    return len(text.encode("utf-8", "surrogatepass"))


def prompt_tokens(messages: list[Message]) -> int:
    """An upper bound on the prompt these messages make, generation prompt included."""
    texts = sum(estimate_tokens(message["content"]) + MESSAGE_OVERHEAD for message in messages)
    return texts + MESSAGE_OVERHEAD


def answer_cap(context: int | None, unknown: int) -> int:
    """The most max_tokens the settings offer: half the context (the conversation keeps the
    other half), in slider steps; `unknown` when the server did not say its context."""
    if context is None:
        return unknown
    return max(SLIDER_STEP, context // 2 // SLIDER_STEP * SLIDER_STEP)


def fit_request(
    history: list[Message],
    user_text: str,
    system_prompt: str | None,
    max_tokens: int,
    context: int | None,
    max_turns: int = MAX_TURNS,
) -> tuple[list[Message], int]:
    """The messages and max_tokens to send so that prompt + max_tokens fits `context` (None:
    unknown, then only the turn limit applies). max_tokens is clamped to what the system prompt
    and the new message leave; then the oldest turns go until the rest fits."""
    messages = request_messages(history, user_text, system_prompt, max_turns)
    if context is None:
        return messages, max_tokens
    has_system = messages[0]["role"] == "system"
    fixed = [*messages[:1]] if has_system else []
    fixed.append(messages[-1])
    max_tokens = min(max_tokens, max(MIN_ANSWER_TOKENS, context - prompt_tokens(fixed)))
    turns = messages[len(fixed) - 1:-1]
    while turns and prompt_tokens(fixed + turns) + max_tokens > context:
        turns = turns[2:]  # the oldest user/assistant pair
    return [*fixed[:-1], *turns, messages[-1]], max_tokens
