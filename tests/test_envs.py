"""An environment's lock (envs/<name>.lock, beside it): a build holds it alone, whatever runs
from the environment (vLLM, the training pipeline) holds it shared. So a rebuild never deletes
the environment under a running server, two builds never race, and each refusal names the
holder. No environment is built here: the builds are stood in for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from persona import envs, services
from persona.paths import REPO_ROOT, env_dir

# Another process using the serve environment (as vLLM would), or building it (the build's
# steps stood in for by a long sleep), once it says so.
USE = """import time
from persona import envs
with envs.using("serve", "vLLM on 127.0.0.1:8000"):
    print("holding", flush=True)
    time.sleep(120)
"""
BUILD = """import subprocess, time
from persona import envs
def step(*args, **kwargs):
    print("holding", flush=True)
    time.sleep(120)
subprocess.run = step
envs.ensure("serve")
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERSONA_DEVICE", "cpu")

    def no_build(*args, **kwargs):
        raise AssertionError(f"a build started: {args}")

    monkeypatch.setattr(envs.subprocess, "run", no_build)
    return tmp_path / "home"


def ready(name: str = "serve") -> None:
    """A built environment as far as persona can tell (its stamp matches)."""
    prefix = env_dir(name)
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    (prefix / ".persona-stamp").write_text(envs._fingerprint(*envs._spec(name)) + "\n")
    assert envs.is_ready(name)


def stale(name: str = "serve") -> None:
    """Its requirements changed since it was built: the next ensure rebuilds it."""
    (env_dir(name) / ".persona-stamp").write_text("an older fingerprint\n")


@pytest.fixture
def other(home):
    started = []

    def start(script: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        for line in process.stdout:  # a build says what it builds first
            if line.strip() == "holding":
                return process
        raise AssertionError(f"it ended with {process.wait()} before holding anything")

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_rebuild_is_refused_while_a_server_runs_from_the_environment(home, other):
    ready()
    server = other(USE)
    stale()
    with pytest.raises(envs.EnvError) as refused:
        envs.ensure("serve")
    message = str(refused.value)
    assert f"in use by pid {server.pid} (vLLM on 127.0.0.1:8000 since " in message
    assert "a build deletes it first" in message
    assert (env_dir("serve") / "bin").is_dir()  # nothing was deleted under the server


def test_a_second_build_is_refused_naming_the_first(home, other):
    first = other(BUILD)
    for second in (lambda: envs.ensure("serve"),
                   lambda: envs.run_module("serve", "persona.serve.convert_base", [])):
        with pytest.raises(envs.EnvError, match=fr"in use by pid {first.pid} \(building the serve "
                                                r"environment since .*python -c "):
            second()


def test_nothing_runs_from_an_environment_being_built(home, other):
    ready()
    with envs._locked("serve", "building the serve environment", shared=False):
        with pytest.raises(envs.EnvError, match=fr"being built by pid {os.getpid()} \(building"):
            with envs.using("serve", "vLLM"):
                pass


def test_servers_share_an_environment(home, other):
    ready()
    other(USE)
    with envs.using("serve", "vLLM on 127.0.0.1:8001") as prefix:
        assert prefix == env_dir("serve")


def test_a_module_holds_its_environment_while_it_runs(home, monkeypatch):
    ready()
    seen = []

    def run(command, env, cwd=None):
        stale()
        with pytest.raises(envs.EnvError, match=fr"in use by pid {os.getpid()} \(python -m x"):
            envs.ensure("serve")
        seen.append(command[1:])
        return 0

    monkeypatch.setattr(services, "run", run)
    assert envs.run_module("serve", "x", ["--flag"]).returncode == 0
    assert seen == [["-m", "x", "--flag"]]
