"""Nothing left running: a command that started children (vLLM and Chainlit for `persona up`, the
training pipeline for `persona train`) leaves none of them, nor their workers, however it is
stopped: Ctrl-C twice in quick succession, SIGTERM, SIGHUP (its terminal closed), SIGKILL.

Fake children stand in for the real ones here: a leader that starts a worker in its process
group, as vLLM starts its engine core (tests/test_up_signals.py kills the real `persona up`).
Each test's processes carry a unique token on their command line; a test fails if any is left.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import as_from_a_shell, wait_for

from persona.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")

# A leader and its worker, in the leader's process group; the worker only sleeps. On SIGTERM the
# leader takes its worker along, as vLLM's API process does with its engine core; with "slow" it
# takes 1.5 s to do so (a cleanup is under way meanwhile).
LEADER = """import signal, subprocess, sys, time
token, slow = sys.argv[1], sys.argv[2] == "slow"
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", token, "worker"])
def leave(*_):
    time.sleep(1.5 if slow else 0)
    worker.terminate()
    worker.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, leave)
print("leader up", flush=True)
time.sleep(300)
"""

# persona's part: children started and watched as `persona up` does (a child that ends on its own
# ends the command), or a module run in an environment as `persona train` runs the pipeline.
DRIVER = """import os, sys, time
from pathlib import Path
from persona import envs
from persona.services import Children, child_env, spawn
token, (how, leader) = os.environ["TEST_TOKEN"], sys.argv[1:3]
if how == "module":
    print("ready", flush=True)
    envs.run_module("train", "fake_pipeline", [token])
    raise SystemExit(0)
with Children() as children:
    for name in ("api", "ui"):
        children.add(spawn([sys.executable, "-c", leader, token, how], child_env(),
                           Path(sys.argv[3]) / f"{name}.log"))
    print("ready", flush=True)
    while all(child.poll() is None for child in children.processes):
        time.sleep(0.2)
"""

# The training pipeline's stand-in: leads its group (lead_group), starts XTuner's stand-in, which
# starts the trainer's; neither of those two handles any signal.
FAKE_PIPELINE = """import subprocess, sys, time
from persona.services import lead_group
lead_group(grace=2)
token = sys.argv[1]
subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                  "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', sys.argv[1], 'trainer']); "
                  "time.sleep(300)", token, "xtuner"])
print("pipeline up", flush=True)
time.sleep(300)
"""


def carrying(token: str) -> list[int]:
    """The running processes whose command line holds the token (zombies have none)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes().split(b"\0"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture
def command(tmp_path):
    """Start the driver (in its own session, like a command in a terminal); every process it
    started, whatever happened, is killed at the end."""
    token = "persona-test-" + secrets.token_hex(6)
    started = []

    def start(how: str, count: int) -> subprocess.Popen:
        (tmp_path / "fake_pipeline.py").write_text(FAKE_PIPELINE)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(tmp_path)]),
               "PERSONA_TRAIN_PYTHON": sys.executable, "PERSONA_HOME": str(tmp_path / "home"),
               "TEST_TOKEN": token}  # not on the driver's own command line
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, how, LEADER, str(tmp_path)],
                                  cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                  preexec_fn=as_from_a_shell)
        started.append(driver)
        assert driver.stdout.readline().strip() == "ready"
        # every child and worker is up before the signal comes
        assert wait_for(lambda: len(carrying(token)) == count, 20), carrying(token)
        return driver

    start.token = token
    yield start
    for pid in carrying(token):
        os.kill(pid, signal.SIGKILL)
    for driver in started:
        driver.kill()
        driver.wait()


def ended(driver: subprocess.Popen) -> str:
    output, _ = driver.communicate(timeout=30)
    return output


def test_ctrl_c_twice_cannot_cut_the_cleanup(command):
    driver = command("slow", 4)  # two children that take a while to stop
    os.killpg(driver.pid, signal.SIGINT)  # the terminal's Ctrl-C goes to the foreground group
    time.sleep(0.5)  # the cleanup is under way, waiting for the first child
    os.killpg(driver.pid, signal.SIGINT)
    output = ended(driver)
    assert "stopping what it started" in output
    assert carrying(command.token) == [], output  # gone before the command ended


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_everything(command, signum):
    driver = command("leave", 4)
    driver.send_signal(signum)
    output = ended(driver)
    assert carrying(command.token) == [], output


def test_sigkill_takes_the_children_along(command):
    driver = command("leave", 4)
    driver.send_signal(signal.SIGKILL)  # no cleanup can run: the kernel tells the children
    driver.wait()
    assert wait_for(lambda: carrying(command.token) == [], 20), carrying(command.token)


def test_a_child_killed_outright_leaves_no_worker(command):
    # vLLM's API process SIGKILLed: its engine core must not stay behind (persona stops its group)
    driver = command("leave", 4)
    api = next(pid for pid in carrying(command.token)
               if os.getpgid(pid) == pid and Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"leave\0"))
    os.kill(api, signal.SIGKILL)
    ended(driver)  # the command sees its child end and stops
    assert carrying(command.token) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_training_stops_with_the_command(command, signum):
    driver = command("module", 3)  # pipeline, XTuner, trainer
    driver.send_signal(signum)
    output = ended(driver)
    assert carrying(command.token) == [], output


def test_a_training_goes_when_the_command_is_killed(command):
    driver = command("module", 3)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert wait_for(lambda: carrying(command.token) == [], 20), carrying(command.token)


# Children inside Children (`persona eval` trains inside its own): the outer one still listens
# once an inner one ended; the handlers found are put back at the end; a signal ignored before
# (`nohup`) stays ignored.
NESTED = """import os, signal, time
from persona.services import Children
signal.signal(signal.SIGHUP, signal.SIG_IGN)
before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
try:
    with Children():
        with Children():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)
            print("nohup kept", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
except KeyboardInterrupt:
    print("stopped", flush=True)
print("restored" if before == {s: signal.getsignal(s) for s in before} else "changed")
"""


def test_nested_children_and_ignored_signals():
    result = subprocess.run([sys.executable, "-c", NESTED], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                            preexec_fn=as_from_a_shell)
    assert result.stdout.split() == ["nohup", "kept", "stopped", "restored"], result.stderr
