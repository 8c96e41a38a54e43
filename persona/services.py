"""Child processes, the one place for their plumbing: the environment a child gets, starting
long-running ones (vLLM, Chainlit), waiting for them over HTTP (never through a proxy), their
logs' tails, stopping them all on a signal (their whole process groups, and on Linux even when
persona itself is killed); the ports and API key they serve on.

Stdlib only: the CLI and the UI's launcher import it without loading a heavy package."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
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


def stop_signals_at_defaults() -> None:
    """preexec_fn for a command started as a user's shell or terminal would: Ctrl-C, SIGTERM
    and hang-up at their defaults. A child inherits ignored signals, and a process started in
    the background (`nohup ... &`), or a test that stopped a cleanup, may have them ignored:
    the command would not hear them."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


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


def launch(command: list[str], env: dict[str, str], cwd: Path | None = None,
           stdout=None) -> subprocess.Popen:
    """A child that leads its own process group (stopping the group takes its workers along),
    in its own session (a terminal's Ctrl-C or hang-up reaches only us, and we stop it), and that
    is sent SIGTERM when this process ends, however it ends (SIGKILL included; Linux). stdout:
    a file, or None for ours."""
    return subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT if stdout is not None else None,
                            start_new_session=True, preexec_fn=_with_us())


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """A long-running child (vLLM, Chainlit) writing to `log`; see launch."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:  # the child keeps its own copy
        return launch(command, env, cwd, stdout=handle)


def run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    """A child in the foreground (its output on ours; the training pipeline, the evals), stopped
    with its group if we are stopped meanwhile; its exit code."""
    with Children() as children:
        return children.add(launch(command, env, cwd)).wait()


_PR_SET_PDEATHSIG = 1


def _with_us():
    """A preexec_fn that makes the child receive SIGTERM when its parent dies (prctl
    PR_SET_PDEATHSIG); None where that does not exist. Linux sends it when the *thread* that
    forked ends, so only the main thread gets it (a child forked by a helper thread would be
    stopped when that thread returns)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent, term = os.getpid(), int(signal.SIGTERM)

    def in_the_child() -> None:  # between fork and exec: nothing that imports or allocates much
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal would ever come
            os._exit(1)

    return in_the_child


def members(group: int) -> list[int]:
    """The processes of a process group that still run (zombies, which only wait to be reaped,
    do not)."""
    if not Path("/proc/self/stat").exists():  # no /proc: whether the group exists at all
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [group]
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # no such group: all gone, or a child that leads none
        if process.poll() is None:
            process.send_signal(signum)
    except PermissionError:
        pass


def _until(condition, deadline: float) -> bool:
    """Poll `condition` until it holds (True) or the monotonic `deadline` passes (False)."""
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _gone(process: subprocess.Popen, deadline: float) -> bool:
    """Wait until the child has ended and nothing of its group runs; False at the deadline."""
    return _until(lambda: process.poll() is not None and not members(process.pid), deadline)


def stop_all(processes: list[subprocess.Popen], grace: float = 15.0) -> None:
    """SIGTERM each child's process group (its workers too, even where the child itself has
    already ended), SIGKILL what is left of a group after `grace` seconds, and wait until none
    of them runs."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        if not _gone(process, deadline):
            _signal_group(process, signal.SIGKILL)
    for process in processes:
        _gone(process, time.monotonic() + 10)


def stop(process: subprocess.Popen, grace: float = 15.0) -> int | None:
    """stop_all for one child; its exit code."""
    stop_all([process], grace)
    return process.returncode


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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Children:
    """The children a command started, stopped with their process groups when it ends: normally,
    on an error, or on SIGINT (Ctrl-C), SIGTERM or SIGHUP (its terminal closed), sent to us or
    to our process group. The first of those signals starts the cleanup and every later one is
    ignored until it is done. Contexts given to `hold` (locks) are left after the children are
    stopped. Use it from the main thread (signal handlers live there)."""

    def __init__(self, grace: float = 15.0) -> None:
        self.processes: list[subprocess.Popen] = []
        self.grace = grace
        self._held = ExitStack()

    def add(self, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append(process)
        return process

    def hold(self, context):
        """Enter a context (a lock) for as long as the children run."""
        return self._held.enter_context(context)

    def __enter__(self) -> "Children":
        _signals.enter()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        _signals.ignore()  # from here on nothing may cut the cleanup short
        stopping = kind is not None and issubclass(kind, KeyboardInterrupt)
        try:
            if stopping and any(process.poll() is None for process in self.processes):
                _say("persona: stopping what it started (a moment; Ctrl-C again changes nothing)")
            stop_all(self.processes, self.grace)
        finally:
            try:
                self._held.close()
            finally:
                _signals.leave(stopping)


class _StopSignals:
    """The stop signals' handlers while Children are active (they nest: `persona eval` trains
    inside its own). The outermost saves the handlers it found and puts them back."""

    def __init__(self) -> None:
        self.depth = 0
        self.saved: dict = {}

    def enter(self) -> None:
        if self.depth == 0:
            self.saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        self.depth += 1
        self.arm()

    def arm(self) -> None:
        for signum in STOP_SIGNALS:
            if self.saved[signum] is not signal.SIG_IGN:  # `nohup`, `cmd &`: ignored stays ignored
                signal.signal(signum, _stop_requested)

    def ignore(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def leave(self, stopping: bool) -> None:
        self.depth -= 1
        if self.depth == 0:
            for signum, handler in self.saved.items():
                signal.signal(signum, handler)
        elif not stopping:  # an inner one ended normally: the outer one listens again
            self.arm()
        # else: the outer one is being left too, and its cleanup must not be cut either


_signals = _StopSignals()


def _stop_requested(signum: int, frame: object) -> None:
    _signals.ignore()  # the first stop signal; a second one, however soon, changes nothing
    raise KeyboardInterrupt


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (SIGHUP)
        pass


def lead_group(grace: float = 15.0) -> None:
    """For a child started with `launch` that starts its own children in its group (the
    training pipeline: XTuner, which starts the trainer): on SIGTERM or SIGHUP, which is also
    what it gets when its parent dies, the whole group goes, and this process ends only once the
    others are gone (a lock it holds is released only then)."""
    def leave(signum: int, frame: object) -> None:
        for each in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(each, signal.SIG_IGN)
        if os.getpgrp() == os.getpid():  # never a group it does not lead (its parent's)
            os.killpg(os.getpid(), signal.SIGTERM)
            if not _others_gone(time.monotonic() + grace):
                for pid in members(os.getpid()):
                    if pid != os.getpid():
                        _kill(pid, signal.SIGKILL)
                _others_gone(time.monotonic() + 10)
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, leave)


def _others_gone(deadline: float) -> bool:
    """Wait until nothing but this process runs in the group it leads; False at the deadline."""
    return _until(lambda: members(os.getpid()) in ([], [os.getpid()]), deadline)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
