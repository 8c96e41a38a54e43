"""Optional password login: who may chat, and on which addresses the chat may listen without one.

Stdlib only: the CLI checks the policy before it starts anything.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Mapping

from persona.services import ServiceError, is_loopback
from persona.ui.settings import UISettings


class LoginRequired(ServiceError):
    """The chat would be reachable from other machines with no login."""


def credentials_ok(settings: UISettings, username: str, password: str) -> bool:
    """Constant-time comparison, so the answer's timing tells nothing about the password."""
    if settings.login_password is None:
        return False
    user_ok = hmac.compare_digest(username.strip().encode(), settings.login_user.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.login_password.encode())
    return user_ok and password_ok


def check_exposure(host: str, password: str | None, allow_no_login: bool = False) -> None:
    """Refuse to serve the chat beyond this machine without a password, unless told to."""
    if password or allow_no_login or is_loopback(host):
        return
    raise LoginRequired(
        f"the chat would listen on {host} with no login: set PERSONA_UI_PASSWORD (and "
        "optionally PERSONA_UI_USER) to require one, or pass --allow-no-login if something in "
        "front of it (a VPN, a proxy with its own login) already restricts who can reach it"
    )


def auth_secret(env: Mapping[str, str]) -> str:
    """Chainlit signs its login tokens with CHAINLIT_AUTH_SECRET; without one, a fresh secret
    per launch (logins then last until the chat restarts)."""
    return env.get("CHAINLIT_AUTH_SECRET") or secrets.token_urlsafe(48)
