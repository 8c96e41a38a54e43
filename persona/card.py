"""The persona card: the single source of truth for data, training, serving, UI and evals."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from persona.errors import PersonaError

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class CardError(PersonaError, ValueError):
    """A card that cannot be used; the message names the field and the fix."""


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zh: str = Field(description="the Chinese form")
    en: str = Field(description="the English form")

    @field_validator("zh", "en")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty; write the text in this language")
        return value


class PersonaCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="served model name: lowercase letters, digits and '-'")
    name: Bilingual
    creator: Bilingual
    base: str = Field("smollm2-135m-instruct", description="a preset name, a local folder or a hub id")
    description: Bilingual | None = Field(None, description="one sentence on what the assistant does")
    greeting: Bilingual | None = Field(None, description="the UI's first message")
    starters: list[str] = Field(default_factory=list, description="starter questions shown in the UI")
    system_prompt: str | None = Field(
        None, description="system prompt used when a client sends none; by default one in the "
        "base's style naming the persona (see default_system_prompt)"
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
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
        return value.strip()

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
    except yaml.YAMLError as error:
        raise CardError(f"{path}: not valid YAML: {error}") from None
    return parse_card(data, str(path))
