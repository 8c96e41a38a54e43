"""Thumbs-down answers of the chat turned into what fixes them: eval cases that `pytest evals/`
asks any endpoint (the question, the conversation before it, what must and must not appear) and
corrections that `persona train --corrections` mixes into the dataset.

An identity question (who it is, who made it) expects the card's name or maker in the language
asked and no other assistant's claim; its correction is the card's own answer. Any other question
answered with the persona's name is a leak: the name and maker must not appear, and the
correction is the answer the user wrote in the comment (none when the comment is empty).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, TypeAdapter

from persona.card import PersonaCard
from persona.identity.judges import CJK, language_of
from persona.identity.names import claims_of_others, expected_name
from persona.identity.overlap import normalise
from persona.identity.phrasings import answers, training_questions
from persona.paths import home

CREATOR = re.compile(r"谁.{0,4}(开发|创造|创建|打造|训练|制作|设计)|(创造|开发|制作)者|"
                     r"who\s+(made|created|built|trained|developed|designed|makes)\s+you|"
                     r"your\s+(creator|maker|developer)", re.I)
WHO = re.compile(r"你是谁|你叫什么|你的名字|介绍一下你自己|自我介绍|你(到底|究竟)?是(什么|哪个)(AI|模型|人|助手)?[？?]?$|"
                 r"^\s*(who|what)\s+are\s+you\s*[?.!]*\s*$|your\s+name\b|introduce\s+yourself",
                 re.I)
# Above this similarity a question is a training phrasing reworded (containment is not enough
# here: "What are you" is inside "What are you doing today?").
SAME_QUESTION = 0.85


class Message(BaseModel):
    role: str
    content: str


class FeedbackCase(BaseModel):
    """One thumbs-down answer as an eval case."""

    id: str  # the chat message (step) the feedback was given on
    kind: Literal["identity", "creator", "leak"]
    lang: Literal["zh", "en"]
    before: list[Message]  # what was sent before the question, system prompt included
    question: str
    expect_any: list[str]  # the answer names one of these
    forbid: list[str]  # and none of these
    comment: str = ""
    answer_was: str = ""  # the answer that got the thumbs down

    @property
    def messages(self) -> list[dict[str, str]]:
        return [m.model_dump() for m in self.before] + [{"role": "user", "content": self.question}]


class Downvote(BaseModel):
    """A thumbs-down as the chat stored it: the answer's step and what it was made from."""

    step_id: str
    messages: list[Message]  # exactly what was sent for the answer, the question last
    answer: str
    comment: str = ""


CASES = TypeAdapter(list[FeedbackCase])


def feedback_dir(persona_id: str) -> Path:
    """Where `persona feedback export` writes, and where `pytest evals/` looks by default."""
    return home() / "feedback" / persona_id


def question_kind(question: str, lang: str) -> str | None:
    """"creator" or "identity" for a question about who the persona is, else None: a training
    phrasing (or a near copy of one), or a question worded like them."""
    asked = normalise(question)
    for item in training_questions():
        if item["lang"] == lang and difflib.SequenceMatcher(
                None, asked, normalise(item["question"]), autojunk=False).ratio() > SAME_QUESTION:
            return "creator" if item["kind"] == "creator" else "identity"
    if CREATOR.search(question):
        return "creator"
    return "identity" if WHO.search(question) else None


def case_of(card: PersonaCard, vote: Downvote) -> FeedbackCase | None:
    """The eval case a thumbs-down makes; None for one with no user question to ask again."""
    if not vote.messages or vote.messages[-1].role != "user":
        return None
    question = vote.messages[-1].content
    lang = language_of(question) or ("zh" if CJK.search(question) else "en")
    kind = question_kind(question, lang) or "leak"
    own = [card.name.zh, card.name.en, card.creator.zh, card.creator.en]
    return FeedbackCase(
        id=vote.step_id, kind=kind, lang=lang, before=vote.messages[:-1], question=question,
        expect_any=[expected_name(card, lang, kind)] if kind != "leak" else [],
        forbid=list(claims_of_others()) if kind != "leak" else own,
        comment=vote.comment, answer_was=vote.answer)


def correction_of(card: PersonaCard, case: FeedbackCase) -> dict | None:
    """A training sample (XTuner's conversation format) that answers the case right: the card's
    own answer to an identity question, the user's comment to anything else (None without one)."""
    if case.kind == "leak":
        answer = case.comment.strip()
        if not answer:
            return None
    else:
        answer = answers(card, case.lang, "creator" if case.kind == "creator" else "who")[0]
    system = next((m.content for m in case.before if m.role == "system"), None)
    turn = {"input": case.question, "output": answer}
    return {"conversation": [{"system": system, **turn} if system else turn]}


def export(card: PersonaCard, votes: list[Downvote]) -> tuple[list[FeedbackCase], list[dict]]:
    """The cases and corrections of a card's thumbs-down answers, one each per question (the
    latest vote wins)."""
    cases: dict[tuple, FeedbackCase] = {}
    for vote in votes:
        case = case_of(card, vote)
        if case is not None:
            cases[(case.question, tuple((m.role, m.content) for m in case.before))] = case
    found = list(cases.values())
    corrections = [sample for case in found if (sample := correction_of(card, case))]
    return found, corrections


def load_cases(path: Path) -> list[FeedbackCase]:
    return CASES.validate_json(Path(path).read_bytes())
