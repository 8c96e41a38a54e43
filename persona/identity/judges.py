"""The judges of one answer, shared by training (which filters replay with them) and the evals:
whether it names someone, is right, stops, loops or leaks template text. Each check of
`problems` returns a readable problem or nothing."""

from __future__ import annotations

import re

SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "</s>", "<s>", "<|assistant|>")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")
# An unfilled answer template: "{{name}}", "{creator}", "<name>".
PLACEHOLDER = re.compile(r"\{\{\s*\w+\s*\}\}|\{(?:name|creator|intro|ability|other|maker)\}"
                         r"|<(?:name|creator)>")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")


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


def language_of(text: str) -> str | None:
    """"zh" when Chinese characters make up at least half of the letters (a Chinese character
    counts as much as a Latin letter), "en" when they make up under a fifth, else None (mixed)."""
    cjk, latin = len(CJK.findall(text)), len(LATIN.findall(text))
    if cjk + latin == 0:
        return None
    share = cjk / (cjk + latin)
    return "zh" if share >= 0.5 else "en" if share < 0.2 else None


def names_any(text: str, words: tuple[str, ...]) -> list[str]:
    """The words of `words` the text contains, ignoring case and spaces."""
    return [word for word in words if _fold(word) in _fold(text)]


def problems(text: str, finish_reason: str | None, expect_any: tuple[str, ...] = (),
             forbid: tuple[str, ...] = (), accept: tuple[str, ...] = (),
             strict: bool = True, answer_lang: str | None = None) -> list[str]:
    """strict adds the format checks: the answer stopped by itself and does not loop;
    answer_lang, that the answer is written in that language."""
    found: list[str] = []
    if strict and finish_reason != "stop":
        found.append(f"finish_reason is {finish_reason!r}, not 'stop' (the answer ran on)")
    leaked = [token for token in SPECIAL_TOKENS if token in text]
    if leaked:
        found.append(f"template tokens in the text: {leaked}")
    placeholder = PLACEHOLDER.search(text)
    if placeholder:
        found.append(f"an unfilled placeholder in the text: {placeholder.group()!r}")
    if answer_lang and language_of(text) != answer_lang:
        answered = language_of(text) or "mixed languages"
        found.append(f"answered in {answered}, asked in {answer_lang}")
    if expect_any and not names_any(text, expect_any):
        found.append(f"names none of {list(expect_any)}")
    if accept and not is_right(text, accept):
        found.append(f"wrong answer: none of {list(accept)}")
    hits = names_any(text, forbid)
    if hits:
        found.append(f"contains {hits}")
    looping = repeated_sentence(text) if strict else None
    if looping:
        found.append(f"repeats the sentence {looping!r}")
    return found


def _pattern(accepted: str) -> re.Pattern[str]:
    """Digits and Latin words match as whole tokens ('7' not in '17', 'chat' not in 'chatbot');
    Chinese forms match anywhere, since Chinese has no spaces between words."""
    escaped = re.escape(accepted.casefold())
    if accepted.isascii():
        return re.compile(rf"(?<![0-9a-z]){escaped}(?![0-9a-z])")
    return re.compile(escaped)


def is_right(text: str, accepted: tuple[str, ...]) -> bool:
    """Whether a free-text answer contains one of the accepted answers."""
    folded = text.casefold()
    return any(_pattern(form).search(folded) for form in accepted)
