"""How to start the chat UI: the command line and environment for `chainlit run ui/app.py`.

Stdlib only at the top level: the CLI imports this without loading Chainlit.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from persona.paths import home
from persona.services import child_env
from persona.ui.login import check_exposure

APP_PATH = Path(__file__).resolve().parent / "app.py"


@dataclass(frozen=True)
class UILaunch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    url: str


def ui_command(
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    card: str | os.PathLike | None = None,
    port: int = 8001,
    host: str = "127.0.0.1",
    app_root: str | os.PathLike | None = None,
    password: str | None = None,
    user: str | None = None,
    allow_no_login: bool = False,
) -> UILaunch:
    """The command and environment that serve the chat at http://host:port.

    Chainlit runs on this interpreter. app_root: where Chainlit writes its config,
    translations and upload folder (default: <persona home>/ui), created here because
    Chainlit fails if it is missing. password (and user): Chainlit's password login; a
    non-loopback host without one raises LoginRequired unless allow_no_login.
    """
    check_exposure(host, password, allow_no_login)
    root = Path(app_root) if app_root is not None else home() / "ui"
    root.mkdir(parents=True, exist_ok=True)
    # None unsets: an inherited value must not leak into this UI when the caller leaves it out.
    env = child_env({
        "PERSONA_BASE_URL": base_url,
        "PERSONA_MODEL": model,
        "CHAINLIT_APP_ROOT": str(root),
        "PERSONA_API_KEY": api_key,
        "PERSONA_CARD": None if card is None else str(Path(card).resolve()),
        "PERSONA_MAX_TOKENS": None,  # the UI's own default
        "PERSONA_UI_PASSWORD": password or None,
        "PERSONA_UI_USER": (user or None) if password else None,
    }, source_tree=True)
    argv = [
        sys.executable, "-m", "chainlit", "run", str(APP_PATH),
        "--headless", "--host", host, "--port", str(port),
    ]
    return UILaunch(argv=argv, env=env, cwd=root, url=f"http://{host}:{port}")

