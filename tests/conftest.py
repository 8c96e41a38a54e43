"""Shared fixtures. The slow ones drive the real components: an XTuner run, a vLLM server."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from persona import commands
from persona.card import PersonaCard, load_card
from persona.services import Children

DEFAULT_CARD = commands.DEFAULT_CARD


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Endpoint:
    """A running OpenAI-compatible server and how to reach it."""

    base_url: str
    api_key: str
    model: str
    card_path: Path

    def client(self, **options):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, **options)


@pytest.fixture(scope="session")
def default_card() -> PersonaCard:
    return load_card(DEFAULT_CARD)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real XTuner QLoRA run of the default card, converted and merged, in a fresh folder."""
    return commands.train(card=DEFAULT_CARD, out=tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def persona_api(trained_run, default_card):
    """A real vLLM server on the merged model, started once per test session."""
    key = "sk-test-" + secrets.token_hex(8)
    with Children() as children:
        url = commands._start_api(default_card, trained_run / "merged", "127.0.0.1", free_port(),
                                  key, children)
        yield Endpoint(url, key, default_card.id, DEFAULT_CARD)
