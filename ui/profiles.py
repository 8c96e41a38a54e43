"""Which personas the chat offers: one profile per model id the server lists.

Several personas can share one server (one model id each, e.g. LoRA adapters on one base);
the user picks one in Chainlit's profile menu. The UI's own model (PERSONA_MODEL) comes first
and is the default; an id with a card in cards/ is shown through that card (name, greeting,
starters, system prompt); any other id gets a neutral profile named by the id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterable

from persona.card import CardError, PersonaCard, load_card
from persona.ui.persona_view import PersonaView, load_view, view_of

log = logging.getLogger("persona.ui")


@dataclass(frozen=True)
class Profile:
    model: str  # the served model id: the profile's key and what each request names
    view: PersonaView
    default: bool = False

    @property
    def description(self) -> str:
        """The menu's hover text: who this is, and the model id behind it."""
        return f"{self.view.about}\n\nmodel: `{self.model}`"


def cards_by_id(folder: Path) -> dict[str, PersonaCard]:
    """Every valid card in folder, by id; a broken card is skipped with a warning."""
    cards: dict[str, PersonaCard] = {}
    paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    for path in paths:
        try:
            card = load_card(path)
        except CardError as error:
            log.warning("skipped card %s: %s", path, error)
            continue
        cards.setdefault(card.id, card)
    return cards


def view_for(model: str, cards: dict[str, PersonaCard]) -> PersonaView:
    card = cards.get(model)
    return view_of(card) if card is not None else load_view(None, model)


def build_profiles(
    served: Iterable[str], main_model: str, main_view: PersonaView, cards: dict[str, PersonaCard]
) -> list[Profile]:
    """The main model first (even when the server does not list it: its requests then show
    the server's own 404 in the chat), then every other served id in the server's order."""
    models = dict.fromkeys([main_model, *served])
    return [
        Profile(model, main_view, default=True) if model == main_model
        else Profile(model, view_for(model, cards))
        for model in models
    ]


def pick(profiles: list[Profile], name: str | None) -> Profile:
    """The profile a session asked for; the default one for an unknown or missing name."""
    return next((p for p in profiles if p.model == name), profiles[0])


def pick_or_add(profiles: list[Profile], model: str, cards: dict[str, PersonaCard]) -> Profile:
    """The profile of `model`, even when the server no longer lists it (a resumed thread keeps
    its persona; its next request then shows the server's 404)."""
    found = next((p for p in profiles if p.model == model), None)
    return found or Profile(model, view_for(model, cards))


class ServedModels:
    """The server's model ids and each one's context, fetched at most every ttl_s seconds.

    The chat page waits for this list, so a failure is not retried before retry_s and
    the last list read (or none) stands in meanwhile.
    """

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, int | None]]], ttl_s: float = 30.0,
                 retry_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._clock = clock
        self._models: dict[str, int | None] = {}
        self._next = float("-inf")
        self._failing = False

    async def get(self, fresh: bool = False) -> list[str]:
        """The ids; `fresh` asks the server now unless a failure is still being waited out."""
        if self._clock() < self._next and not (fresh and not self._failing):
            return list(self._models)
        try:
            self._models = dict(await self._fetch())
            self._next, self._failing = self._clock() + self._ttl_s, False
        except Exception as error:  # the API down must not keep the chat from opening
            log.warning("could not list the served models: %s: %s", type(error).__name__, error)
            self._next, self._failing = self._clock() + self._retry_s, True
        return list(self._models)

    @property
    def answering(self) -> bool:
        """Whether the server's last answer to a listing was a list (not an error)."""
        return not self._failing and self._next != float("-inf")

    def context(self, model: str) -> int | None:
        """The model's context (max_model_len) in the last list read; None when unknown."""
        return self._models.get(model)


class Offered:
    """The profile menu each user's page was last given, to notice when the server's personas
    have changed since (Chainlit's page fetches its menu only when it loads)."""

    def __init__(self) -> None:
        self._by_user: dict[str, tuple[str, ...]] = {}

    def given(self, user: str, profiles: list[Profile]) -> None:
        self._by_user[user] = tuple(p.model for p in profiles)

    def stale(self, user: str, profiles: list[Profile]) -> bool:
        """Whether the user's page shows another menu than `profiles`; from now on it is
        counted as shown (the page reloads once, never in a loop)."""
        now = tuple(p.model for p in profiles)
        before = self._by_user.get(user)
        self._by_user[user] = now
        return before is not None and before != now
