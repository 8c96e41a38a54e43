"""The persona card: the single source of truth for data, training, serving, UI and evals."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from persona.errors import PersonaError

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # the whole id: fullmatch, never a prefix
# What the dataset's templates read as a slot ("{name}", "{v2}"): card text that holds one would
# pass the card and fail only after the dataset (and the slow replay step) was built.
PLACEHOLDER = re.compile(r"\{\w*\}")
SURROGATE = re.compile(r"[\ud800-\udfff]")
SYSTEM_PROMPT_LIMIT = 1000  # characters; sent (and trained) with every sample and request
STARTER_LIMIT = 200


class CardError(PersonaError, ValueError):
    """A card that cannot be used; the message names the field and the fix."""


def text_problem(value: str, limit: int, slots: bool = True) -> str | None:
    """Why a card text cannot be used (None when it can): a lone surrogate (no character: it
    cannot be written as UTF-8), more than `limit` characters, or (`slots`) a brace placeholder
    that the dataset's templates would take for one of theirs."""
    if match := SURROGATE.search(value):
        return (f"holds a lone surrogate ({match.group()!r} at character {match.start()}), which "
                "is no character; write the character itself instead of a \\u escape")
    if len(value) > limit:
        return f"is {len(value)} characters long; the limit is {limit}: shorten it"
    if slots and (match := PLACEHOLDER.search(value)):
        return (f"holds {match.group()!r}, which the dataset's templates would read as a "
                "placeholder; remove the braces or use other brackets")
    return None


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: ClassVar[int] = 300  # characters per language
    slots: ClassVar[bool] = False  # filled into the dataset's templates: no brace placeholders

    zh: str = Field(description="the Chinese form")
    en: str = Field(description="the English form")

    @field_validator("zh", "en")
    @classmethod
    def _usable(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty; write the text in this language")
        if problem := text_problem(value, cls.limit, cls.slots):
            raise ValueError(problem)
        return value


class Name(Bilingual):
    limit, slots = 40, True


class Creator(Bilingual):
    limit, slots = 60, True


class Description(Bilingual):
    limit, slots = 200, True


class PersonaCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="served model name: lowercase letters, digits and '-'")
    name: Name
    creator: Creator
    base: str = Field("smollm2-135m-instruct", description="a preset name, a local folder or a hub id")
    description: Description | None = Field(
        None, description="one sentence on what the assistant does")
    greeting: Bilingual | None = Field(None, description="the UI's first message")
    starters: list[str] = Field(default_factory=list, description="starter questions shown in the UI")
    system_prompt: str | None = Field(
        None, description="system prompt used when a client sends none; by default one in the "
        "base's style naming the persona (see default_system_prompt)"
    )
    trust_remote_code: bool = Field(
        False, description="let a local or hub base run the Python code it ships (auto_map in its "
        "config); presets decide for themselves"
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid id; use 1-63 lowercase letters, digits and '-', "
                "starting with a letter or digit (for example 'xiaocong')"
            )
        return value

    @field_validator("base")
    @classmethod
    def _base_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name a preset (smollm2-135m-instruct), a local folder or a hub id")
        if problem := text_problem(value, 1000, slots=False):
            raise ValueError(problem)
        return value.strip()

    @field_validator("system_prompt")
    @classmethod
    def _system_prompt_usable(cls, value: str | None) -> str | None:
        if value is not None and (problem := text_problem(value, SYSTEM_PROMPT_LIMIT)):
            raise ValueError(problem)
        return value

    @field_validator("starters")
    @classmethod
    def _starters_usable(cls, value: list[str]) -> list[str]:
        for number, text in enumerate(value, 1):
            if problem := text_problem(text, STARTER_LIMIT, slots=False):
                raise ValueError(f"starter {number} {problem}")
        return value

    def default_system_prompt(self) -> str:
        """The system prompt the persona's template injects when a client sends none.

        Chat bases are tuned with a default system prompt (SmolLM2's "You are a helpful AI
        assistant named SmolLM, trained by Hugging Face"); without one they answer worse
        (SmolLM2-135M: "2+3=6"). So unless the card sets its own, the persona gets the same
        sentence with its name and maker, and trains and serves with it."""
        if self.system_prompt:
            return self.system_prompt
        return f"You are a helpful AI assistant named {self.name.en}, created by {self.creator.en}."

    def intro(self, lang: str) -> str:
        """The one-line self-introduction every identity answer is built around."""
        if lang == "zh":
            return f"我是{self.name.zh}，由{self.creator.zh}打造的AI助手。"
        return f"I am {self.name.en}, an AI assistant created by {self.creator.en}."


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(card)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "extra_forbidden":
            message = "is not a card field; check its spelling"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_card(data: object, source: str = "card") -> PersonaCard:
    if not isinstance(data, dict):
        raise CardError(f"{source}: expected a YAML mapping with id, name, creator and base")
    try:
        return PersonaCard.model_validate(data)
    except ValidationError as error:
        raise CardError(f"{source} is not a valid persona card:\n{_describe(error)}") from None


def load_card(path: str | Path) -> PersonaCard:
    path = Path(path)
    if not path.is_file():
        raise CardError(f"{path}: no such card file; pass CARD=path/to/card.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        raise CardError(f"{path}: not UTF-8 text (byte {error.start} is {byte:#04x}); save the "
                        "card as UTF-8 (in most editors: Save with Encoding, UTF-8)") from None
    except yaml.YAMLError as error:
        raise CardError(f"{path}: not valid YAML: {error}") from None
    return parse_card(data, str(path))
