"""Child processes, the one place for their plumbing: the environment a child gets, starting
long-running ones (vLLM, Chainlit), waiting for them over HTTP (never through a proxy), their
logs' tails, stopping them all on a signal; the ports and API key they serve on.

Stdlib only: the CLI and the UI's launcher import it without loading a heavy package."""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping

from persona.errors import PersonaError
from persona.paths import REPO_ROOT


class ServiceError(PersonaError, RuntimeError):
    """A service would not start; the message carries its log's tail."""


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_key() -> str:
    """PERSONA_API_KEY when set, else a fresh key that the caller prints once."""
    return os.environ.get("PERSONA_API_KEY") or "sk-persona-" + secrets.token_urlsafe(18)


class KeyRequired(ServiceError):
    """The API would listen beyond this machine on a key nobody chose."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_api_exposure(host: str) -> None:
    """Refuse to serve the API beyond this machine unless PERSONA_API_KEY chose its key: a
    generated key lives only in one start-up banner and changes at every start."""
    if os.environ.get("PERSONA_API_KEY") or is_loopback(host):
        return
    raise KeyRequired(
        f"the API would listen on {host} with a key generated for this start only",
        hint="set PERSONA_API_KEY to the key clients must send (e.g. python3 -c \"import secrets; "
             "print('sk-persona-' + secrets.token_urlsafe(24))\"), or keep --host 127.0.0.1 "
             "and put a proxy with its own authentication in front")


def ensure_free(host: str, port: int, flag: str) -> None:
    """Fail before a minute-long start-up rather than after it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise ServiceError(f"port {port} on {host} is in use; choose another with {flag}") from None


def child_env(changes: Mapping[str, str | None] | None = None, *, first_on_path: Path | None = None,
              source_tree: bool = False, defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, for a child.

    first_on_path leads PATH (an environment's bin: a tool that re-launches a bare `python`
    finds the right one); source_tree puts this repository first on PYTHONPATH; defaults fill
    only what is unset; changes come last, None unsetting a variable (an inherited value must
    not leak into the child).
    """
    env = dict(os.environ)
    if first_on_path is not None:
        env["PATH"] = os.pathsep.join(filter(None, [str(first_on_path), env.get("PATH")]))
    if source_tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for name, value in (defaults or {}).items():
        env.setdefault(name, value)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """A child in its own process group, so stopping it takes its workers along."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen, grace: float = 15.0) -> int | None:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds; its exit code."""
    if process.poll() is not None:
        return process.returncode
    try:
        os.killpg(process.pid, signal.SIGTERM)
        return process.wait(grace)
    except ProcessLookupError:
        return process.wait()
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return process.wait()


def tail(log: Path, lines: int = 30) -> str:
    """A log's last lines, for an error message."""
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# The services here run on this machine: an http_proxy from the environment (a CI machine may
# set one) must not carry the request elsewhere.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def open_local(url: str | urllib.request.Request, timeout: float):
    """urlopen for a service on this machine: never through a proxy."""
    return _DIRECT.open(url, timeout=timeout)


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float, what: str) -> float:
    """Poll url until it answers 2xx; fail at once, with the log's tail, if the child dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise ServiceError(f"{what} exited with code {process.returncode} while starting; "
                               f"last lines of {log}:\n{tail(log)}")
        try:
            with open_local(url, timeout=5) as response:
                if response.status < 300:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise ServiceError(f"{what} did not answer {url} within {timeout:.0f} s; see {log}:\n{tail(log)}")


class Children:
    """Stops every child it holds on normal exit, Ctrl-C or SIGTERM (to us or our process group)."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def add(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process

    def __enter__(self) -> "Children":
        self._previous = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup
        for process in reversed(self.processes):
            stop(process)
        signal.signal(signal.SIGTERM, self._previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
