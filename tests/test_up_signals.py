"""Nothing of `persona up` is left running, however it is stopped: Ctrl-C twice in quick
succession, SIGTERM, SIGHUP (its terminal closed), SIGKILL. Real processes: vLLM (its API
process and the engine core it starts) and Chainlit, on the session's trained run (conftest's
`trained_run`: the default card trained once per session, or PERSONA_TEST_RUN).

A process "of the run" is any descendant of `persona up` seen while it served, any process in
their process groups, and any process whose command line names the test's own run folder or
ports. tests/test_processes.py covers the same paths with fake children, in seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import as_from_a_shell, wait_for

from persona.paths import REPO_ROOT, env_dir, model_dir
from persona.run_folder import RunFolder
from persona.services import free_port, members, stop, wait_http

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc"),
              pytest.mark.skipif(not (env_dir("serve") / "bin" / "vllm").exists(),
                                 reason="needs the serve env: `persona setup`")]


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory) -> tuple[Path, Path]:
    """(card, run): the session's run's manifest and a link to its merged model in a folder of
    this test's own (what `up` writes there, the marker and lock, stays out of the real run)."""
    source = RunFolder(trained_run)
    root = tmp_path_factory.mktemp("up-signals")
    run = RunFolder(root / "run")
    run.root.mkdir()
    for name in ("manifest.json", "options.json"):
        if (source.root / name).is_file():
            shutil.copy(source.root / name, run.root / name)
    run.merged.symlink_to(source.merged, target_is_directory=True)
    card = root / "card.yaml"
    card.write_text(yaml.safe_dump(source.card().model_dump(exclude_none=True), allow_unicode=True))
    return card, run.root


def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(ppid, process group, state, start time) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[2]), fields[0], int(fields[19])


def _all() -> dict[int, tuple[int, int, str, int]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def descendants(root: int) -> dict[int, tuple[int, int]]:
    """pid -> (process group, start time) of every process below root, and of every process in
    their groups."""
    table = _all()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, group, _, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (group, started)
                frontier.append(pid)
    groups = {group for group, _ in found.values()}
    found.update({pid: (stat[1], stat[3]) for pid, stat in table.items() if stat[1] in groups})
    return found


def left(seen: dict[int, tuple[int, int]], marks: set[str]) -> list[str]:
    """The processes of the run still running (zombies are not)."""
    groups = {group for group, _ in seen.values()}
    found = []
    for pid, (_, group, state, started) in _all().items():
        if state == "Z":
            continue
        args = _cmdline(pid)
        if seen.get(pid, (0, 0))[1] == started or group in groups or marks & set(args):
            found.append(f"{pid} {' '.join(args)[:160]}")
    return found


def _up(card: Path, run: Path, api_port: int, ui_port: int) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "persona.cli", "up", "--card", str(card), "--out", str(run),
         "--api-port", str(api_port), "--ui-port", str(ui_port)],
        cwd=REPO_ROOT, env={**os.environ, "PERSONA_API_KEY": "sk-up-signals"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=as_from_a_shell)
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


@pytest.mark.parametrize("how", ["SIGINT twice", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_nothing_of_up_is_left(served, how):
    card, run = served
    api_port, ui_port = free_port(), free_port()
    process, lines = _up(card, run, api_port, ui_port)
    marks = {str(run / "merged"), str(api_port), str(ui_port)}
    seen: dict[int, tuple[int, int]] = {}
    try:
        assert wait_for(lambda: any("Ctrl-C stops everything" in line for line in lines)
                     or process.poll() is not None, 900), "".join(lines)
        assert process.poll() is None, "".join(lines)
        seen = descendants(process.pid)
        names = " ".join(" ".join(_cmdline(pid)) for pid in seen)
        assert "vllm" in names and "chainlit" in names, names
        started = time.monotonic()
        if how == "SIGINT twice":
            os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the foreground group
            wait_for(lambda: any("stopping what it started" in line for line in lines), 5)
            os.killpg(process.pid, signal.SIGINT)  # while the cleanup runs
        elif how == "SIGHUP":
            os.killpg(process.pid, signal.SIGHUP)  # the terminal closed
        else:
            process.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        process.wait(120)
        if how == "SIGKILL":  # no cleanup ran: the children are told by the kernel
            wait_for(lambda: not left(seen, marks), 120)
        remaining = left(seen, marks)
        print(f"\n{how}: {len(seen)} processes of the run, none left after "
              f"{time.monotonic() - started:.1f} s" if not remaining else f"\n{how}: left {remaining}")
        assert remaining == [], "".join(lines)
    finally:
        for pid, (_, started) in seen.items():  # whatever happened, nothing outlives the test
            if (stat := _stat(pid)) is not None and stat[3] == started:
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_vllm_engine_core_goes_with_its_group(tmp_path):
    """What vLLM's engine core does when its API process is SIGKILLed (printed), and that stop()
    ends it all the same: it is in the API process's group."""
    from persona.serve.server import ServeOptions, start

    base = model_dir("smollm2-135m-instruct")
    if not (base / ".done").exists():
        pytest.skip("needs the converted base: `persona setup`")
    options = ServeOptions(model=base, served_name="smollm2-base", api_key="k", port=free_port())
    log = tmp_path / "vllm.log"
    process = start(options, env_dir("serve"), log)
    try:
        wait_http(options.health_url, process, log, timeout=900, what="vLLM")
        workers = [pid for pid in members(process.pid) if pid != process.pid]
        assert workers, "vLLM started no worker in its group"
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(20)
        alive = [pid for pid in workers if pid in members(process.pid)]
        print(f"\nvLLM API process SIGKILLed: {len(alive)} of its {len(workers)} workers still "
              f"running 20 s later ({', '.join(' '.join(_cmdline(pid))[:60] for pid in alive)})")
    finally:
        stop(process, grace=15)
    assert members(process.pid) == []
