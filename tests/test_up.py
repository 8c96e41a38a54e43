"""`persona up`: serves the trained persona and its chat, prints both URLs, and a SIGTERM to its
process group stops everything."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import DEFAULT_CARD, free_port
from persona.paths import REPO_ROOT
from persona.services import open_local

pytestmark = pytest.mark.slow


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_up_serves_api_and_chat_and_stops_on_sigterm(trained_run):
    api_port, ui_port = free_port(), free_port()
    env = dict(os.environ, PERSONA_API_KEY="sk-up-test")
    process = subprocess.Popen(
        [sys.executable, "-m", "persona.cli", "up", "--card", str(DEFAULT_CARD), "--out",
         str(trained_run), "--api-port", str(api_port), "--ui-port", str(ui_port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{api_port}/v1" in output and f"http://127.0.0.1:{ui_port}" in output
        assert "sk-up-test" not in output, "a key from PERSONA_API_KEY is never printed"
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/v1/models",
                                         headers={"Authorization": "Bearer sk-up-test"})
        with open_local(request, timeout=10) as response:
            assert b'"xiaocong"' in response.read()
        with open_local(f"http://127.0.0.1:{ui_port}/", timeout=10) as response:
            assert response.status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # what a terminal's Ctrl-C or a supervisor does
        process.wait(60)
    assert not re.search(r"Traceback", process.stdout.read() or "")
    assert not _port_open(api_port) and not _port_open(ui_port)
