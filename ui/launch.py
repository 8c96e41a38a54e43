"""How to start the chat UI: the command line and environment for `chainlit run ui/app.py`.

Stdlib only at the top level: the CLI imports this without loading Chainlit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from persona.paths import REPO_ROOT, home
from persona.ui.login import check_exposure

APP_PATH = Path(__file__).resolve().parent / "app.py"
# A loopback URL must not go through an http_proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class UILaunch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    url: str

    def start(self, **popen_kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, **popen_kwargs)


def ui_command(
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    card: str | os.PathLike | None = None,
    port: int = 8501,
    host: str = "127.0.0.1",
    max_tokens: int | None = None,
    python: str | None = None,
    app_root: str | os.PathLike | None = None,
    base_env: dict[str, str] | None = None,
    password: str | None = None,
    user: str | None = None,
    allow_no_login: bool = False,
) -> UILaunch:
    """The command and environment that serve the chat at http://host:port.

    python: the app env's interpreter (default: this one). app_root: where Chainlit
    writes its config, translations and upload folder (default: <persona home>/ui),
    created here because Chainlit fails if it is missing. base_env: the environment
    to extend (default: os.environ). password (and user): Chainlit's password login; a
    non-loopback host without one raises LoginRequired unless allow_no_login.
    """
    check_exposure(host, password, allow_no_login)
    root = Path(app_root) if app_root is not None else home() / "ui"
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if base_env is None else base_env)
    env.update(
        PERSONA_BASE_URL=base_url,
        PERSONA_MODEL=model,
        CHAINLIT_APP_ROOT=str(root),
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        ),
    )
    # An inherited value must not leak into this UI when the caller leaves it out.
    for name, value in (
        ("PERSONA_API_KEY", api_key),
        ("PERSONA_CARD", None if card is None else str(Path(card).resolve())),
        ("PERSONA_MAX_TOKENS", None if max_tokens is None else str(max_tokens)),
        ("PERSONA_UI_PASSWORD", password or None),
        ("PERSONA_UI_USER", (user or None) if password else None),
    ):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    argv = [
        python or sys.executable, "-m", "chainlit", "run", str(APP_PATH),
        "--headless", "--host", host, "--port", str(port),
    ]
    return UILaunch(argv=argv, env=env, cwd=root, url=f"http://{host}:{port}")


def wait_until_up(url: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll url until it answers; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the chat UI exited with code {process.returncode} before serving {url}")
        try:
            with _NO_PROXY.open(url, timeout=2):
                return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the chat UI did not answer at {url} within {timeout_s:.0f} s")
        time.sleep(0.3)
