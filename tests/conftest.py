"""Shared fixtures. The slow ones drive the real components: an XTuner run, a vLLM server.

PERSONA_TEST_RUN=<run folder> reuses a finished run (one with manifest.json and merged/) instead
of training the default card once per session: the fixtures then serve that run under its own
card (from its manifest). Handy while developing serving or UI tests; CI leaves it unset.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from persona import commands
from persona.card import PersonaCard, load_card
from persona.paths import REPO_ROOT
from persona.run_folder import RunFolder, RunFolderError
from persona.services import Children, free_port, stop_signals_at_defaults
from suite_order import ModuleTimes, fast_first

DEFAULT_CARD = commands.DEFAULT_CARD
_CHAINLIT_ROOT = tempfile.mkdtemp(prefix="persona-test-chainlit-")


def pytest_configure(config):
    # Importing chainlit (the data-layer tests do) writes .chainlit/ and .files/ into its app
    # root, the working folder by default: a temporary one instead of the repository.
    os.environ.setdefault("CHAINLIT_APP_ROOT", _CHAINLIT_ROOT)


def pytest_unconfigure(config):
    shutil.rmtree(_CHAINLIT_ROOT, ignore_errors=True)


_MODULE_TIMES = ModuleTimes()


def pytest_collection_modifyitems(session, config, items):
    fast_first(items)  # tests/suite_order.py


def pytest_runtest_logreport(report):
    _MODULE_TIMES.add(report)


@dataclass
class Endpoint:
    """A running OpenAI-compatible server and how to reach it."""

    base_url: str
    api_key: str
    model: str
    card_path: Path

    def client(self, **options):
        from openai import OpenAI

        return OpenAI(**{"base_url": self.base_url, "api_key": self.api_key, "max_retries": 0, **options})


def _reused_run() -> RunFolder | None:
    """The finished run named by PERSONA_TEST_RUN, checked; None when unset."""
    value = os.environ.get("PERSONA_TEST_RUN")
    if not value:
        return None
    run = RunFolder.at(value)
    if not run.finished():
        raise pytest.UsageError(f"PERSONA_TEST_RUN={value}: not a finished run "
                                f"(needs manifest.json and merged/config.json)")
    try:
        run.card()  # its manifest is read here, once: an unreadable one stops the session
    except RunFolderError as error:
        raise pytest.UsageError(f"PERSONA_TEST_RUN={value}: {error}") from None
    return run


@pytest.fixture(scope="session")
def card_path(tmp_path_factory) -> Path:
    """The card file the served persona comes from (the run's own card under PERSONA_TEST_RUN)."""
    run = _reused_run()
    if run is None:
        return DEFAULT_CARD
    card = run.card()
    in_repo = REPO_ROOT / "cards" / f"{card.id}.yaml"
    if in_repo.is_file() and load_card(in_repo) == card:
        return in_repo
    import yaml

    path = tmp_path_factory.mktemp("card") / f"{card.id}.yaml"
    path.write_text(yaml.safe_dump(card.model_dump(exclude_none=True), allow_unicode=True))
    return path


@pytest.fixture(scope="session")
def default_card(card_path) -> PersonaCard:
    return load_card(card_path)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real XTuner QLoRA run of the default card, converted and merged, in a fresh folder
    (or the finished run named by PERSONA_TEST_RUN)."""
    reused = _reused_run()
    return reused.root if reused else commands.train(card=DEFAULT_CARD,
                                                     out=tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def persona_api(trained_run, default_card, card_path):
    """A real vLLM server on the merged model, started once per test session."""
    key = "sk-test-" + secrets.token_hex(8)
    with Children() as children:
        url = commands._start_api(default_card, RunFolder(trained_run).merged, "127.0.0.1",
                                  free_port(), key, children)
        yield Endpoint(url, key, default_card.id, card_path)


def thumbs_down_cases(folder: Path) -> Path:
    """What `persona feedback export` writes for a chat answer "你是谁？" voted down (asked with
    no system prompt, so the name can come from the weights only)."""
    from persona.feedback import CASES, Downvote, export

    vote = Downvote(step_id="step-1", answer="我是一个AI助手。", comment="",
                    messages=[{"role": "user", "content": "你是谁？"}])
    cases, _ = export(load_card(DEFAULT_CARD), [vote])
    (folder / "cases.json").write_bytes(CASES.dump_json(cases))
    return folder / "cases.json"


# Another process holding a run (claimed for the card id xiaocong): alone, as a training would,
# or shared, as a server or an eval.
HOLD_RUN = """import sys, time
from persona.run_folder import RunFolder
run = RunFolder.at(sys.argv[1])
run.claim("xiaocong")
with run.lock(sys.argv[2], shared=sys.argv[3] == "shared"):
    print("holding", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def hold_run():
    """start(root, job="train", shared=False): a process holding the run at root, once it says
    so; all of them killed after the test."""
    started = []

    def start(root: Path, job: str = "train", shared: bool = False) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD_RUN, str(root), job,
                                    "shared" if shared else "alone"], cwd=REPO_ROOT,
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "holding"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


# preexec_fn for a command a test starts as a user's shell would (a test that stops a command's
# cleanup inside the session's own server leaves the stop signals ignored in this process)
as_from_a_shell = stop_signals_at_defaults


def wait_for(condition, timeout: float, every: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


# -- the chat's databases ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of Debian's package for the session (tests/postgres.py); the tests
    that need it are skipped, with the reason, where the package is not installed."""
    from postgres import MISSING, PostgresServer, binaries

    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip(MISSING)
    with PostgresServer(bin_dir) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database for the chat's threads, once SQLite (a file) and once PostgreSQL (a
    fresh database on the session's server)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'threads.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"chat_{uuid.uuid4().hex[:12]}")


# `make test` runs with --no-silent-skips: a test that skips there fails the run, unless it is
# listed here (a node id, or the start of one) with the reason it may skip on a machine that
# built everything `make test` builds. None may today.
ALLOWED_SKIPS: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-silent-skips", action="store_true",
                     help="fail the run when a test skips that ALLOWED_SKIPS (tests/conftest.py) "
                          "does not list")


def _unlisted_skips(config: pytest.Config) -> list:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    return [report for report in skipped
            if not any(report.nodeid.startswith(allowed) for allowed in ALLOWED_SKIPS)]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    _MODULE_TIMES.write(terminalreporter)
    if not config.getoption("--no-silent-skips"):
        return
    terminalreporter.section("skips")
    for allowed, why in ALLOWED_SKIPS.items():
        terminalreporter.write_line(f"allowed: {allowed}: {why}")
    unlisted = _unlisted_skips(config)
    for report in unlisted:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        terminalreporter.write_line(f"NOT ALLOWED: {report.nodeid}: {reason}", red=True)
    if unlisted:
        terminalreporter.write_line(f"the run fails: {len(unlisted)} skipped, not listed in "
                                    f"ALLOWED_SKIPS (tests/conftest.py)", red=True)
    elif not ALLOWED_SKIPS:
        terminalreporter.write_line("no test skipped")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--no-silent-skips") and _unlisted_skips(session.config) \
            and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
