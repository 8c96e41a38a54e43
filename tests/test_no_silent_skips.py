"""`make test` runs with --no-silent-skips (tests/conftest.py): a skip there fails the run and is
named, unless ALLOWED_SKIPS lists it; plain pytest is unchanged."""

from __future__ import annotations

import os
import subprocess
import sys

from persona.paths import REPO_ROOT

PROBE = """import pytest

def test_skips():
    pytest.skip("the thing it needs is missing")

def test_passes():
    pass
"""


def run(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_probe.py"), *flags],
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'tests'}:{REPO_ROOT}"}, cwd=tmp_path,
        capture_output=True, text=True, timeout=120)


def test_a_skip_fails_make_test_and_is_named(tmp_path):
    result = run(tmp_path, "--no-silent-skips")
    assert result.returncode == 1, result.stdout
    assert "NOT ALLOWED: test_probe.py::test_skips: Skipped: the thing it needs is missing" \
        in result.stdout
    assert "the run fails: 1 skipped" in result.stdout


def test_plain_pytest_still_skips_quietly(tmp_path):
    result = run(tmp_path)
    assert result.returncode == 0 and "1 passed, 1 skipped" in result.stdout, result.stdout
