"""What a single answer must satisfy; each check returns a readable problem or nothing."""

from __future__ import annotations

import re

from evals.general_skills import is_right

SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "</s>", "<s>", "<|assistant|>")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def _fold(text: str) -> str:
    return text.casefold().replace(" ", "")


def repeated_sentence(text: str) -> str | None:
    """A sentence of some length that occurs twice marks a model looping."""
    seen: set[str] = set()
    for sentence in SENTENCE_END.split(text):
        key = _fold(sentence)
        if len(key) < 12:
            continue
        if key in seen:
            return sentence.strip()
        seen.add(key)
    return None


def problems(text: str, finish_reason: str | None, expect_any: tuple[str, ...] = (),
             forbid: tuple[str, ...] = (), accept: tuple[str, ...] = (),
             strict: bool = True) -> list[str]:
    """strict adds the format checks: the answer stopped by itself and does not loop."""
    found: list[str] = []
    if strict and finish_reason != "stop":
        found.append(f"finish_reason is {finish_reason!r}, not 'stop' (the answer ran on)")
    leaked = [token for token in SPECIAL_TOKENS if token in text]
    if leaked:
        found.append(f"template tokens in the text: {leaked}")
    if expect_any and not any(_fold(word) in _fold(text) for word in expect_any):
        found.append(f"names none of {list(expect_any)}")
    if accept and not is_right(text, accept):
        found.append(f"wrong answer: none of {list(accept)}")
    hits = [word for word in forbid if _fold(word) in _fold(text)]
    if hits:
        found.append(f"contains {hits}")
    looping = repeated_sentence(text) if strict else None
    if looping:
        found.append(f"repeats the sentence {looping!r}")
    return found
