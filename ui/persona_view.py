"""How the persona card shows up in the chat: author name, greeting, starters."""

from __future__ import annotations

from dataclasses import dataclass, field

from persona.card import PersonaCard, load_card


@dataclass(frozen=True)
class PersonaView:
    author: str
    greeting: str
    starters: list[str] = field(default_factory=list)
    system_prompt: str | None = None
    about: str = ""  # who this is, in a few sentences (Markdown)

    @property
    def readme(self) -> str:
        """Chainlit's Readme page."""
        return f"# {self.author}\n\n{self.about}\n"


def _both(zh: str, en: str, sep: str) -> str:
    return zh if zh == en else f"{zh}{sep}{en}"


def view_of(card: PersonaCard) -> PersonaView:
    if card.greeting is not None:
        greeting = _both(card.greeting.zh, card.greeting.en, "\n\n")
    else:
        greeting = (
            f"你好！我是{card.name.zh}，有什么可以帮你的吗？\n\n"
            f"Hi! I'm {card.name.en}. How can I help you?"
        )
    author = _both(card.name.zh, card.name.en, " · ")
    about = [card.intro("zh"), card.intro("en")]
    if card.description is not None:
        about += [card.description.zh, card.description.en]
    return PersonaView(
        author=author,
        greeting=greeting,
        starters=list(card.starters),
        # Sent with every request: a server holding several personas as LoRA adapters has one
        # template and injects no persona's default (serve/adapters.py).
        system_prompt=card.default_system_prompt(),
        about="\n\n".join(about),
    )


def load_view(card_path: str | None, model: str) -> PersonaView:
    """The card's view; without a card, the served model id stands in for the name."""
    if card_path is None:
        return PersonaView(
            author=model,
            greeting=f"你好！我是{model}，有什么可以帮你的吗？\n\nHi! I'm {model}. How can I help you?",
            about=f"The model `{model}`, served without a persona card. 未配置角色卡的模型。",
        )
    return view_of(load_card(card_path))
