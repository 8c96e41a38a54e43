"""Who is signed in to the chat: a password login, or the one local user; and on which addresses
the chat may listen without a password.

Chainlit lists a user's threads (and lets them resume one) only for a signed-in user, and shows
each user only their own. With PERSONA_UI_PASSWORD the login is Chainlit's password form. Without
one, on a loopback address, the page signs in LOCAL_USER by itself (no prompt): whoever can
reach a loopback port is on this machine. Anywhere else without a password (--allow-no-login)
nobody is signed in, and no thread is stored.

Stdlib only: the CLI checks the policy before it starts anything.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Mapping

from persona.services import ServiceError, is_loopback
from persona.ui.settings import UISettings


# The identifier of the user signed in without a password.
LOCAL_USER = "local"


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


def signs_in_locally(settings: UISettings, host: str) -> bool:
    """Whether the page signs in LOCAL_USER by itself: no password, and a loopback address."""
    return not settings.login_required and is_loopback(host)


def keeps_threads(settings: UISettings, host: str) -> bool:
    """Threads are stored only for someone signed in (they are listed, and resumed, per user)."""
    return settings.login_required or signs_in_locally(settings, host)


def auth_secret(env: Mapping[str, str]) -> str:
    """Chainlit signs its login tokens with CHAINLIT_AUTH_SECRET; without one, a fresh secret
    per launch (logins then last until the chat restarts)."""
    return env.get("CHAINLIT_AUTH_SECRET") or secrets.token_urlsafe(48)
