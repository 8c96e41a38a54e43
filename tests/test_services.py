"""Starting, waiting for and stopping long-running children (vLLM, Chainlit)."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from persona.paths import REPO_ROOT
from persona.services import (ServiceError, child_env, ensure_free, free_port, members, stop,
                              wait_http)


def test_wait_http_fails_fast_with_log_tail_when_the_server_died(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("loading\nValueError: no such model\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(ServiceError, match="code 3(.|\n)*no such model"):
        # Nothing listens on port 9: only the dead process can end this quickly.
        wait_http("http://127.0.0.1:9/health", proc, log, timeout=60, what="vLLM")


def test_wait_http_times_out(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(ServiceError, match="did not answer"):
            wait_http("http://127.0.0.1:9/health", proc, tmp_path / "log", timeout=0.5, what="vLLM")
    finally:
        proc.kill()
        proc.wait()


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_wait_http_goes_direct_whatever_proxy_the_environment_names(tmp_path, monkeypatch):
    # A proxy nothing listens on: a request sent through it would fail until the timeout.
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seconds = wait_http(f"http://127.0.0.1:{server.server_port}/health", proc, tmp_path / "log",
                            timeout=10, what="vLLM")
        assert seconds < 5
    finally:
        server.shutdown()
        server.server_close()
        proc.kill()
        proc.wait()


def test_child_env_leads_path_and_pythonpath_fills_defaults_and_unsets(monkeypatch):
    for name, value in {"PATH": "/usr/bin", "PYTHONPATH": "/elsewhere", "T_KEEP": "1", "T_GONE": "x",
                        "T_SET": "mine"}.items():
        monkeypatch.setenv(name, value)
    for name in ("T_NEW", "T_UNSET"):
        monkeypatch.delenv(name, raising=False)
    env = child_env({"T_GONE": None, "T_NEW": "v"}, first_on_path=Path("/env/bin"), source_tree=True,
                    defaults={"T_SET": "default", "T_UNSET": "default"})
    assert env["PATH"] == f"/env/bin{os.pathsep}/usr/bin"
    assert env["PYTHONPATH"] == f"{REPO_ROOT}{os.pathsep}/elsewhere"
    assert [env[name] for name in ("T_KEEP", "T_NEW", "T_SET", "T_UNSET")] == ["1", "v", "mine", "default"]
    assert "T_GONE" not in env and os.environ["T_GONE"] == "x"  # the parent's own stays as it was
    monkeypatch.delenv("PATH")
    monkeypatch.delenv("PYTHONPATH")
    env = child_env(first_on_path=Path("/env/bin"), source_tree=True)
    assert (env["PATH"], env["PYTHONPATH"]) == ("/env/bin", str(REPO_ROOT))


def live_members(group: int) -> list[int]:
    """Processes of the group that still run (zombies waiting to be reaped do not)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state != "Z":
            members.append(int(stat.parent.name))
    return members


def test_stop_ends_the_whole_process_group():
    # A parent that ignores nothing and a child that would outlive it by a minute.
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(live_members(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(live_members(proc.pid)) == 2
    assert stop(proc, grace=5) == -signal.SIGTERM
    deadline = time.monotonic() + 5
    while live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_members(proc.pid) == []


def test_stop_kills_what_ignores_sigterm():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    assert stop(proc, grace=0.5) == -signal.SIGKILL


def test_ensure_free_names_the_flag_when_the_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port} .* in use.*API_PORT"):
            ensure_free("127.0.0.1", port, "API_PORT")


def test_stop_ends_the_workers_of_a_child_that_is_already_gone():
    # vLLM's API process killed outright: its engine core, in its group, must still go
    code = ("import signal, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(live_members(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert len(live_members(proc.pid)) == 1  # the worker, which ignores SIGTERM too
    assert stop(proc, grace=0.5) == -signal.SIGKILL
    assert live_members(proc.pid) == []


def test_members_are_the_live_processes_of_a_group():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                            start_new_session=True)
    try:
        assert members(proc.pid) == [proc.pid] == live_members(proc.pid)
        proc.kill()
        deadline = time.monotonic() + 5
        while live_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert members(proc.pid) == []  # a zombie waiting to be reaped does not count
        proc.wait()
        assert members(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()
