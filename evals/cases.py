"""Eval cases built from a persona card and the held-out questions of its run.

Identity questions come from the run's data/heldout.json, which training writes from the
identity core's split (persona/identity/heldout.py, worded unlike any training phrasing: a test
checks), so a pass means the model generalised rather than memorised; an endpoint with no run
is asked the core's split itself. Leakage prompts come from persona/identity/unrelated.py,
written apart from every training set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from persona.evals.general_skills import GENERAL_SKILLS
from persona.card import PersonaCard
from persona.feedback import FeedbackCase
from persona.identity.heldout import (GENERIC_OPERATOR_PROMPTS, HELDOUT_QUESTIONS,
                                      OPERATOR_PERSONAS, OTHER_PERSONA_TURNS, TOPIC_TURNS,
                                      USER_OVERRIDES)
from persona.identity.names import claims_of_others, expected_name
from persona.identity.phrasings import GENERIC_SYSTEMS
from persona.identity.unrelated import UNRELATED
from persona.run_folder import RunFolder

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

# Samples at temperature 0.7 per stability question.
STABILITY_SAMPLES = 5

# Turns already spoken before the identity question: 0, 2 and 5 (asked at turn 1, 3 and 6).
MULTI_TURN_DEPTHS = (0, 2, 5)


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    lang: str
    messages: list[dict[str, str]] = field(hash=False)
    expect_any: tuple[str, ...] = ()  # at least one must appear
    forbid: tuple[str, ...] = ()  # none may appear
    temperature: float = 0.0
    samples: int = 1  # answers drawn; the case passes when min_passing of them do
    min_passing: int = 1
    seed: int | None = None  # sampling seed, for reproducible answers at temperature > 0
    accept: tuple[str, ...] = ()  # general-skill cases: the right answer, in any of these forms
    # Format checks (finish_reason 'stop', no looping) hold the persona's own answers. Controls,
    # leakage and general-skill questions judge over-firing and knowledge only: the base as
    # shipped loops on Chinese prompts, and that must not count as over-firing or a lost skill.
    strict: bool = True
    answer_lang: str | None = None  # identity answers: in the language asked
    max_tokens: int = 160


def _messages(question: str, system: str | None = None,
              history: list[tuple[str, str]] | tuple = ()) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    for asked, answered in history:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    return messages + [{"role": "user", "content": question}]


def feedback_cases(exported: list[FeedbackCase]) -> list[Case]:
    """The chat's thumbs-down answers as cases (`persona feedback export`): each must now pass.
    Judged on content only, like the leakage prompts: the base loops on Chinese, and a case
    must fail on it for what it answers, not for how long it runs."""
    return [Case(f"feedback-{case.id}", "feedback", case.lang, case.messages,
                 tuple(case.expect_any), tuple(case.forbid), strict=False,
                 answer_lang=case.lang if case.kind != "leak" else None)
            for case in exported]


def heldout_questions(run: Path | None = None) -> list[dict[str, str]]:
    """The held-out questions written with the run's dataset; the core's split without a run."""
    questions = RunFolder.at(run).read_heldout() if run is not None else HELDOUT_QUESTIONS
    return [dict(item) for item in questions]


class _Builder:
    """Collects the cases of one card; each identity case expects the card's name (or creator)
    in the language asked and forbids claiming another assistant."""

    def __init__(self, card: PersonaCard):
        self.card = card
        self.claims = claims_of_others()
        self.own = (card.name.zh, card.name.en, card.creator.zh, card.creator.en)
        self.cases: list[Case] = []

    def expect(self, lang: str, kind: str = "who") -> tuple[str, ...]:
        return (expected_name(self.card, lang, kind),)

    def identity(self, category: str, lang: str, messages: list[dict], kind: str = "who",
                 **options) -> None:
        self.cases.append(Case(f"{category}-{len(self.cases)}", category, lang, messages,
                               self.expect(lang, kind), self.claims, answer_lang=lang, **options))

    def unrelated(self, category: str, lang: str, question: str, **options) -> None:
        self.cases.append(Case(f"{category}-{len(self.cases)}", category, lang,
                               _messages(question), (), self.own, strict=False, **options))


def build_cases(card: PersonaCard, heldout: list[dict] | None = None) -> list[Case]:
    """Every case for the card; identity ones from `heldout` (default: the core's split)."""
    heldout = heldout_questions() if heldout is None else heldout
    build = _Builder(card)
    generic = {lang: [GENERIC_SYSTEMS[lang][0], *GENERIC_OPERATOR_PROMPTS[lang]]
               for lang in GENERIC_SYSTEMS}
    for index, item in enumerate(heldout):
        lang, question, kind = item["lang"], item["question"], item["kind"]
        category = ("creator" if kind == "creator" else
                    "adversarial" if kind in ADVERSARIAL_KINDS else f"identity-{lang}")
        build.identity(category, lang, _messages(question), kind)
        if index % 3 == 0:
            system = generic[lang][(index // 3) % len(generic[lang])]
            build.identity("system-prompt", lang, _messages(question, system=system), kind)
        if index % 8 == 2:
            # Sampled answers, each its own case with its own seed: the category's rate is the
            # share of the 40 samples that pass, reproducible for a given server.
            for seed in range(STABILITY_SAMPLES):
                build.identity("stability", lang, _messages(question), kind, temperature=0.7,
                               seed=seed)
    for lang, overrides in USER_OVERRIDES.items():
        for question in overrides:
            build.identity("adversarial", lang, _messages(question))
    _conversations(build, heldout)
    for persona in OPERATOR_PERSONAS:
        for question in _first_who(heldout, persona["lang"]):
            build.cases.append(Case(
                f"operator-persona-{len(build.cases)}", "operator-persona", persona["lang"],
                _messages(question, system=persona["system"]), (persona["name"], persona["maker"]),
                build.own, answer_lang=persona["lang"]))
    for lang, question in NEAR_MISSES:
        build.cases.append(Case(f"near-miss-{len(build.cases)}", "near-miss", lang,
                                _messages(question), build.expect(lang), build.claims,
                                answer_lang=lang))
    for lang, question in CONTROLS:
        build.unrelated("control", lang, question)
    for lang, _kind, question in UNRELATED:
        build.unrelated(f"leakage-{lang}", lang, question)
    for lang, question, accepted in GENERAL_SKILLS:
        build.unrelated("general-skill", lang, question, accept=accepted, max_tokens=64)
    return build.cases


def _first_who(heldout: list[dict], lang: str) -> list[str]:
    """Two held-out questions of the language, one about the name, one about the maker."""
    mine = [item for item in heldout if item["lang"] == lang]
    return [next(item["question"] for item in mine if item["kind"] == kind)
            for kind in ("who", "creator")]


def _conversations(build: _Builder, heldout: list[dict]) -> None:
    """Identity asked at turn 1, 3 and 6 of a conversation on other topics, and after a profile
    switch (earlier answers came from another persona)."""
    for lang, topics in TOPIC_TURNS.items():
        mine = [item for item in heldout if item["lang"] == lang
                and item["kind"] not in ADVERSARIAL_KINDS]
        for number, item in enumerate(mine[:6]):
            depth = MULTI_TURN_DEPTHS[number % len(MULTI_TURN_DEPTHS)]
            history = [topics[(number + step) % len(topics)] for step in range(depth)]
            build.identity("multi-turn", lang, _messages(item["question"], history=history),
                           item["kind"])
        for number, switched in enumerate(OTHER_PERSONA_TURNS[lang]):
            item = mine[(number + 6) % len(mine)]
            history = [switched, topics[number % len(topics)]]
            build.identity("profile-switch", lang, _messages(item["question"], history=history),
                           item["kind"])
