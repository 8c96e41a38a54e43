"""The UI's configuration, read from PERSONA_* environment variables.

PERSONA_* names (not OPENAI_*) because Chainlit replaces OPENAI_API_KEY with a
fake key when CI=true.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from persona.errors import PersonaError

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.7
DEFAULT_LOGIN_USER = "persona"
# vLLM without --api-key accepts any key, but the OpenAI client refuses an empty one.
NO_KEY = "EMPTY"


class SettingsError(PersonaError, ValueError):
    """A missing or malformed variable; the message names it and the fix."""


@dataclass(frozen=True)
class UISettings:
    base_url: str
    model: str
    api_key: str = NO_KEY
    card_path: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    timeout_s: float = 300.0
    # How long a new chat waits for a model server that does not answer yet (starting).
    server_wait_s: float = 300.0
    # Chainlit's password login is on when a password is set (PERSONA_UI_PASSWORD).
    login_user: str = DEFAULT_LOGIN_USER
    login_password: str | None = None

    @property
    def login_required(self) -> bool:
        return self.login_password is not None


def _number(env: Mapping[str, str], name: str, default, kind, low, high):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} must be between {low} and {high}")
    return value


def login_user(env: Mapping[str, str]) -> str:
    """The user name of the password login: PERSONA_UI_USER, else the default."""
    return env.get("PERSONA_UI_USER", "").strip() or DEFAULT_LOGIN_USER


def from_env(env: Mapping[str, str] | None = None) -> UISettings:
    env = os.environ if env is None else env
    base_url = env.get("PERSONA_BASE_URL", "").strip()
    model = env.get("PERSONA_MODEL", "").strip()
    if not base_url:
        raise SettingsError("PERSONA_BASE_URL is not set; e.g. http://127.0.0.1:8000/v1")
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"PERSONA_BASE_URL={base_url!r} must start with http:// or https://")
    if not model:
        raise SettingsError("PERSONA_MODEL is not set; use the served model id (the card's id)")
    return UISettings(
        base_url=base_url.rstrip("/"),
        model=model,
        api_key=env.get("PERSONA_API_KEY", "").strip() or NO_KEY,
        card_path=env.get("PERSONA_CARD", "").strip() or None,
        max_tokens=_number(env, "PERSONA_MAX_TOKENS", DEFAULT_MAX_TOKENS, int, 1, 32768),
        temperature=_number(env, "PERSONA_TEMPERATURE", DEFAULT_TEMPERATURE, float, 0.0, 2.0),
        timeout_s=_number(env, "PERSONA_TIMEOUT", 300.0, float, 1.0, 3600.0),
        server_wait_s=_number(env, "PERSONA_SERVER_WAIT", 300.0, float, 0.0, 3600.0),
        login_user=login_user(env),
        # Not stripped: spaces may be part of a password; an empty one means no login.
        login_password=env.get("PERSONA_UI_PASSWORD") or None,
    )
