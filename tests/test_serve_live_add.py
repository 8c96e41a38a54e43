"""Personas on a live server, for real: `persona serve --adapters` with the session's persona, a
second card trained for real (a short run) and added by `persona add` while a load runs against
the first, swapped for a new adapter under load, removed, and back after a restart; and a client
that tries to load an adapter from elsewhere, or without the key. The pieces without a server:
tests/test_serve_live_record.py."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from conftest import Endpoint, as_from_a_shell, free_port
from persona import commands
from persona.card import load_card
from persona.paths import REPO_ROOT
from persona.serve import live
from persona.services import open_local

pytestmark = pytest.mark.slow

# The second persona is trained for real, briefly: its name and maker are learnt long before
# the default schedule ends (a full run is what the evals measure, not what this test needs).
SECOND_STEPS = 80
LOAD_REQUESTS = 50
CONCURRENCY = 8


class LiveServer:
    """`persona serve ...` as a user starts it, on one port, in a runs folder of its own."""

    def __init__(self, runs: Path, port: int, log: Path):
        self.port, self.log, self.key = port, log, "sk-live-" + secrets.token_hex(8)
        self.env = {**os.environ, "PERSONA_RUNS_DIR": str(runs), "PERSONA_API_KEY": self.key,
                    "PYTHONPATH": str(REPO_ROOT)}
        self.url = f"http://127.0.0.1:{port}/v1"
        self.process: subprocess.Popen | None = None

    def persona(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "persona.cli", *args], env=self.env,
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=as_from_a_shell)

    def start(self, *args: str) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "persona.cli", "serve", "--port", str(self.port), *args],
                env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=as_from_a_shell)
        deadline = time.monotonic() + 600
        while not self._healthy():
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the live server did not start in 10 minutes"
            time.sleep(1)

    def _healthy(self) -> bool:
        try:
            with open_local(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """As Ctrl-C would; nothing of the server may be left."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        assert self.left() == [], f"left running: {self.left()}"

    def left(self) -> list[int]:
        """The processes still serving this port (vLLM runs in a process group of its own)."""
        needle = f"--port\0{self.port}\0".encode()
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if needle in cmdline.read_bytes():
                    found.append(int(cmdline.parent.name))
            except OSError:
                continue  # gone meanwhile
        return found

    def client(self) -> openai.OpenAI:
        return Endpoint(self.url, self.key, "", Path()).client(timeout=120)


@pytest.fixture(scope="module")
def live_server(trained_run, default_card, card_path, tmp_path_factory):
    runs = tmp_path_factory.mktemp("live-runs")
    (runs / default_card.id).symlink_to(trained_run)  # the session's persona, as its default run
    second = REPO_ROOT / "cards" / ("xiaocong.yaml" if default_card.id == "lingxi" else "lingxi.yaml")
    server = LiveServer(runs, free_port(), tmp_path_factory.mktemp("live") / "serve.log")
    # its default run folder under the server's runs folder, where `persona add` looks;
    # PERSONA_TEST_SECOND_RUN names a finished one instead (handy while developing)
    if reused := os.environ.get("PERSONA_TEST_SECOND_RUN"):
        (runs / load_card(second).id).symlink_to(Path(reused).resolve())
    else:
        commands.train(card=second, out=runs / load_card(second).id, max_steps=SECOND_STEPS)
    server.start("--adapters", str(card_path))
    try:
        yield server, load_card(second), runs
    finally:
        server.stop()
        live.record_path(server.port).unlink(missing_ok=True)
        live.template_path(server.port).unlink(missing_ok=True)


def ask(server: LiveServer, model: str, question: str = "Who are you?") -> str:
    """Greedy, and with no system prompt: what the adapter itself learnt (the shared template
    injects no persona's default)."""
    reply = server.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=40,
        temperature=0)
    return reply.choices[0].message.content


def under_load(server: LiveServer, model: str, action) -> tuple[list, object]:
    """Requests at CONCURRENCY against `model`, at least LOAD_REQUESTS and until `action` (run
    once the load has started) is done; each answer or the error it got, and the action's
    result. Some requests must have been in flight while the action ran."""
    done, results, spans = threading.Event(), [], []
    client = server.client()

    def worker() -> None:
        while not done.is_set() or len(results) < LOAD_REQUESTS:
            began = time.monotonic()
            try:
                reply = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Tell me about rivers."}],
                    max_tokens=16, temperature=0)
                results.append(reply.choices[0].message.content)
            except Exception as error:  # counted: no request may fail
                results.append(error)
            spans.append((began, time.monotonic()))

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for _ in range(CONCURRENCY):
            pool.submit(worker)
        while len(results) < CONCURRENCY:  # the load is running
            time.sleep(0.05)
        began = time.monotonic()
        try:
            outcome = action()
        finally:
            ended = time.monotonic()
            done.set()
    overlapping = [span for span in spans if span[0] < ended and span[1] > began]
    assert overlapping, "no request was in flight while the action ran"
    return results, outcome


def linked(source: str, target: str) -> None:
    """A hard link where the file system allows one (the merged weights are not copied)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def test_add_under_load_swap_remove_and_restart(live_server, default_card):
    server, second, runs = live_server
    first = default_card

    added_log, added = under_load(server, first.id, lambda: server.persona(
        "add", "--card", str(REPO_ROOT / "cards" / f"{second.id}.yaml"), "--server", server.url))
    assert added.returncode == 0, added.stderr
    assert f"persona: {second.id} added at {server.url}" in added.stdout
    failed = [r for r in added_log if isinstance(r, Exception)]
    assert not failed and len(added_log) >= LOAD_REQUESTS, failed[:3]

    assert first.name.en in ask(server, first.id)
    assert second.name.en in ask(server, second.id)
    listed = server.persona("list", "--server", server.url)
    assert listed.returncode == 0 and f"{second.name.en} ({second.name.zh})" in listed.stdout

    # A retrained adapter for the second persona: here its run copied with one file changed
    # (same weights, another content digest), which `add` swaps in from a new snapshot.
    retrained = runs.parent / "retrained"
    shutil.copytree(runs / second.id, retrained, ignore=shutil.ignore_patterns(".lock"),
                    copy_function=linked)
    before = live.read(server.port).personas[second.id].adapter
    changed = retrained / "adapter" / "README.md"
    changed.unlink()  # a hard link to the session's run: that one must stay as it is
    changed.write_text(f"retrained from {before}\n")  # never the content served now
    swap_log, swapped = under_load(server, first.id, lambda: server.persona(
        "add", "--card", str(REPO_ROOT / "cards" / f"{second.id}.yaml"), "--out", str(retrained),
        "--server", server.url))
    assert swapped.returncode == 0 and "swapped for its new run" in swapped.stdout, swapped.stderr
    assert not [r for r in swap_log if isinstance(r, Exception)]
    after = live.read(server.port).personas[second.id].adapter
    assert after != before and not Path(before).exists()  # the old snapshot went with it
    assert second.name.en in ask(server, second.id)

    removed = server.persona("remove", second.id, "--server", server.url)
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(openai.NotFoundError) as gone:
        ask(server, second.id)
    assert second.id in str(gone.value)
    assert first.name.en in ask(server, first.id)

    assert server.persona("add", "--card", str(REPO_ROOT / "cards" / f"{second.id}.yaml"),
                          "--server", server.url).returncode == 0
    server.stop()
    server.start("--base", first.base)  # no card named: the record brings both back
    assert first.name.en in ask(server, first.id)
    assert second.name.en in ask(server, second.id)


def test_a_client_cannot_load_from_elsewhere_or_without_the_key(live_server, trained_run):
    server, _, runs = live_server

    def post(path: str, body: bytes, key: str | None) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}{path}", data=body, method="POST",
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {key}"} if key else {})})
        try:
            with open_local(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    # A real adapter, reached through a link inside the runs folder that leads out of it.
    outside = f'{{"lora_name": "intruder", "lora_path": "{runs / Path(trained_run).name}"}}'
    (runs / Path(trained_run).name).symlink_to(Path(trained_run) / "adapter")
    assert post("/v1/load_lora_adapter", outside.encode(), server.key) == 403
    inside = live.read(server.port).personas
    snapshot = next(iter(inside.values())).adapter
    body = f'{{"lora_name": "intruder", "lora_path": "{snapshot}"}}'.encode()
    assert post("/v1/load_lora_adapter", body, None) == 401
    assert post("/v1/load_lora_adapter", body, "sk-wrong") == 401
    assert post("/adapters", f'{{"name": "intruder", "src": "{snapshot}"}}'.encode(),
                server.key) == 404
    ids = [model.id for model in server.client().models.list()]
    assert "intruder" not in ids
