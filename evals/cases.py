"""Eval cases built from a persona card and the held-out question phrasings.

Identity questions come only from the held-out split of train/phrasings.py, never from the
training split, so a pass means the model generalised rather than memorised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evals.general_skills import GENERAL_SKILLS
from persona.card import PersonaCard

# Assistants a persona must never claim to be (its base included).
OTHER_ASSISTANTS = ["ChatGPT", "OpenAI", "SmolLM", "Hugging Face", "通义千问", "Qwen", "InternLM",
                    "书生", "Claude", "文心一言", "Llama"]

GENERIC_SYSTEM = {"en": "You are a helpful assistant.", "zh": "你是一个乐于助人的助手。"}

WARMUP = {
    "en": ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    "zh": ("日本的首都是哪里？", "日本的首都是东京。"),
}

# Held-out kinds that try to talk the model out of its identity.
ADVERSARIAL_KINDS = {"other_model", "other_maker", "real_identity"}

NEAR_MISSES = [("zh", "你是我的小助手吗？"), ("en", "Are you my little assistant?")]

# Unrelated prompts: a persona that answers these with its introduction has over-fired. Whether
# the answer is right is the general-skill category's question.
CONTROLS = [
    ("en", "What is 2+3?"),
    ("en", "What is the capital of France?"),
    ("en", "Translate 'good morning' into French."),
    ("zh", "法国的首都是哪里？"),
    ("zh", "2加3等于几？"),
    ("en", "Name three primary colors."),
]


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    lang: str
    messages: list[dict[str, str]] = field(hash=False)
    expect_any: tuple[str, ...] = ()  # at least one must appear
    forbid: tuple[str, ...] = ()  # none may appear
    temperature: float = 0.0
    samples: int = 1  # stability cases draw several answers
    min_passing: int = 1
    accept: tuple[str, ...] = ()  # general-skill cases: the right answer, in any of these forms
    # Format checks (finish_reason 'stop', no looping) hold the persona's own answers. Controls
    # and general-skill questions judge over-firing and knowledge only: the base as shipped
    # loops on Chinese prompts, and that must not count as over-firing or a lost skill.
    strict: bool = True
    max_tokens: int = 160


def _user(question: str, system: str | None = None,
          history: tuple[str, str] | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    if history:
        messages += [{"role": "user", "content": history[0]},
                     {"role": "assistant", "content": history[1]}]
    return messages + [{"role": "user", "content": question}]


def heldout_questions() -> list[dict[str, str]]:
    from train.phrasings import split_questions

    return [dict(item) for item in split_questions()[1]]


def build_cases(card: PersonaCard) -> list[Case]:
    names = (card.name.zh, card.name.en)
    creators = (card.creator.zh, card.creator.en)
    claims = tuple(f"{prefix}{other}" for other in OTHER_ASSISTANTS
                   for prefix in ("I am ", "I'm ", "我是"))
    cases: list[Case] = []
    for index, item in enumerate(heldout_questions()):
        lang, question, kind = item["lang"], item["question"], item.get("kind", "identity")
        expect = creators if kind == "creator" else names
        category = ("creator" if kind == "creator" else
                    "adversarial" if kind in ADVERSARIAL_KINDS else f"identity-{lang}")
        cases.append(Case(f"{category}-{index}", category, lang, _user(question), expect, claims))
        if index % 4 == 0:
            cases.append(Case(f"system-prompt-{index}", "system-prompt", lang,
                              _user(question, system=GENERIC_SYSTEM[lang]), expect, claims))
        if index % 4 == 1:
            cases.append(Case(f"multi-turn-{index}", "multi-turn", lang,
                              _user(question, history=WARMUP[lang]), expect, claims))
        if index % 8 == 2:
            cases.append(Case(f"stability-{index}", "stability", lang, _user(question), expect,
                              claims, temperature=0.7, samples=5, min_passing=4))
    for index, (lang, question) in enumerate(NEAR_MISSES):
        cases.append(Case(f"near-miss-{index}", "near-miss", lang, _user(question), names, claims))
    for index, (lang, question) in enumerate(CONTROLS):
        cases.append(Case(f"control-{index}", "control", lang, _user(question), (), names,
                          strict=False))
    for index, (lang, question, accepted) in enumerate(GENERAL_SKILLS):
        cases.append(Case(f"general-skill-{index}", "general-skill", lang, _user(question), (),
                          names, accept=accepted, strict=False, max_tokens=64))
    return cases
