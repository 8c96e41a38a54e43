"""Where persona keeps what it builds: environments, base models and runs live outside the source tree."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The cache root; PERSONA_HOME overrides ~/.cache/persona."""
    return Path(os.environ.get("PERSONA_HOME", "~/.cache/persona")).expanduser()


def env_dir(name: str) -> Path:
    return home() / "envs" / name


def model_dir(preset: str) -> Path:
    return home() / "models" / preset


def runs_dir() -> Path:
    """Where runs live by default, and the only folder a live server loads adapters from;
    PERSONA_RUNS_DIR overrides home()/runs."""
    return Path(os.environ.get("PERSONA_RUNS_DIR") or home() / "runs").expanduser()


def run_dir(persona_id: str) -> Path:
    return runs_dir() / persona_id

