"""Near-duplicate detection between question sets: a held-out or yardstick question must not be
a training question in other clothes (the same words with other punctuation, one contained in
the other, or a few characters apart)."""

from __future__ import annotations

import difflib
import re
import unicodedata

# Above this difflib ratio two normalised questions count as the same question reworded.
NEAR_DUPLICATE_RATIO = 0.8


def normalise(text: str) -> str:
    """Lower case, full-width folded, punctuation and spaces removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", "", text)


def near_duplicate(first: str, second: str, ratio: float = NEAR_DUPLICATE_RATIO) -> bool:
    """Equal after normalising, one contained in the other, or a difflib ratio above `ratio`."""
    a, b = normalise(first), normalise(second)
    if not a or not b:
        return a == b
    if a in b or b in a:
        return True
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() > ratio


def overlaps(questions: list[str], others: list[str],
             ratio: float = NEAR_DUPLICATE_RATIO) -> list[tuple[str, str]]:
    """Every (question, other) pair that is a near duplicate."""
    return [(question, other) for question in questions for other in others
            if near_duplicate(question, other, ratio)]
