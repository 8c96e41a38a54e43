"""Who else a persona could be taken for: other assistants and makers it must never claim, and
how each base model family names itself (its answers are rewritten to the persona's)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from persona.card import PersonaCard

# Assistants and makers a persona must never claim to be (its base included).
OTHER_ASSISTANTS = ("ChatGPT", "OpenAI", "SmolLM", "Hugging Face", "通义千问", "Qwen", "InternLM",
                    "书生", "Claude", "文心一言", "Llama")

# How each base family names itself and its maker, keyed by the prefix of its preset, folder or
# hub name (smollm2-135m-instruct, Qwen2.5-7B-Instruct, internlm2_5-...).
BASE_IDENTITIES = {
    "smollm": (("SmolLM2", "SmolLM"), ("Hugging Face", "HuggingFace")),
    "qwen": (("Qwen", "通义千问"), ("Alibaba Cloud", "阿里云", "阿里巴巴")),
    "internlm": (("InternLM", "书生·浦语", "书生浦语"), ("Shanghai AI Laboratory", "上海人工智能实验室")),
}


def claims_of_others() -> tuple[str, ...]:
    """Sentences that claim another assistant's identity: "I am ChatGPT", "我是Qwen", ..."""
    return tuple(f"{prefix}{other}" for other in OTHER_ASSISTANTS
                 for prefix in ("I am ", "I'm ", "我是"))


def identity_of(base: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, makers) a base model uses for itself; by preset name or folder/hub name."""
    key = Path(base.rstrip("/")).name.lower()
    for prefix, identity in BASE_IDENTITIES.items():
        if key.startswith(prefix):
            return identity
    return (), ()


def expected_name(card: PersonaCard, lang: str, kind: str) -> str:
    """What an answer to an identity question must name: the maker when asked who made it, else
    the persona itself, in the language asked."""
    return getattr(card.creator if kind == "creator" else card.name, lang)
