"""The project's own virtual environments.

XTuner 0.2.0 pins transformers 4.48 while vLLM's CPU build needs transformers 5.x, so training
and serving cannot share one environment; the GGUF export (llama.cpp) has a third, built only
when it is first used. Each lives under the cache, is built from a pinned
requirements file, then mended by its own `install_fixes.fix_env`, and is rebuilt when either
changes (a stamp holds their hash). A lock file beside each (`<name>.lock`) is held by its build
alone, and shared by whatever runs from it, so a rebuild never deletes it under a running vLLM
or trainer, nor races another build.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from persona import locks, services
from persona.errors import PersonaError
from persona.paths import REPO_ROOT, env_dir
from persona.services import child_env, tail


ENVS = ("train", "serve", "gguf")


class EnvError(PersonaError, RuntimeError):
    """An environment could not be built; the message says where its log is."""


def device() -> str:
    """'cuda' where an NVIDIA driver answers, else 'cpu'; PERSONA_DEVICE overrides."""
    chosen = os.environ.get("PERSONA_DEVICE", "auto")
    if chosen in ("cpu", "cuda"):
        return chosen
    if chosen != "auto":
        raise EnvError(f"PERSONA_DEVICE={chosen!r}: use cpu, cuda or auto")
    smi = shutil.which("nvidia-smi")
    if smi and subprocess.run([smi, "-L"], capture_output=True).returncode == 0:
        return "cuda"
    return "cpu"


def _spec(name: str) -> tuple[Path, str]:
    """The requirements file and the fixes module of an environment."""
    if name == "train":
        return REPO_ROOT / "requirements" / "train.txt", "persona.train.install_fixes"
    if name == "serve":
        return REPO_ROOT / "requirements" / f"serve-{device()}.txt", "persona.serve.install_fixes"
    if name == "gguf":  # `persona export`: llama.cpp's converter and runtime, compiled once
        return REPO_ROOT / "requirements" / "gguf.txt", "persona.serve.gguf_install"
    raise EnvError(f"unknown environment {name!r}; use {', '.join(ENVS)}")


def _fingerprint(requirements: Path, fixes_module: str) -> str:
    digest = hashlib.sha256(requirements.read_bytes())
    fixes = REPO_ROOT / (fixes_module.replace(".", "/") + ".py")
    if fixes.exists():
        digest.update(fixes.read_bytes())
    return digest.hexdigest()


def python(name: str) -> Path:
    return env_dir(name) / "bin" / "python"


def is_ready(name: str) -> bool:
    requirements, fixes = _spec(name)
    stamp = env_dir(name) / ".persona-stamp"
    return stamp.exists() and stamp.read_text().strip() == _fingerprint(requirements, fixes)


def lock_file(name: str) -> Path:
    """Beside the environment (a rebuild deletes the environment's own folder)."""
    return env_dir(name).parent / f"{name}.lock"


@contextmanager
def _locked(name: str, job: str, shared: bool) -> Iterator[None]:
    """A build holds the environment's lock alone; whatever runs from it (vLLM, the training
    pipeline) holds it shared, so a build can never delete it under them."""
    def refused(holders: str) -> EnvError:
        if shared:
            return EnvError(f"the {name} environment ({env_dir(name)}) is being built by "
                            f"{holders}: wait for that to finish, then run this again")
        return EnvError(f"the {name} environment ({env_dir(name)}) needs building, but it is in "
                        f"use by {holders}: a build deletes it first, so wait for that to finish "
                        "(or stop it), then run this again")

    lock_file(name).parent.mkdir(parents=True, exist_ok=True)
    with locks.hold(lock_file(name), job, refused, shared=shared):
        yield


def ensure(name: str) -> Path:
    """Build the environment if it is missing or stale; return its prefix. A build holds the
    environment's lock: it is refused while another build runs or anything runs from it."""
    prefix = env_dir(name)
    if is_ready(name):
        return prefix
    with _locked(name, f"building the {name} environment", shared=False):
        if not is_ready(name):  # another build may have finished it meanwhile
            _build(name, prefix)
    return prefix


@contextmanager
def using(name: str, job: str) -> Iterator[Path]:
    """The environment (built first if needed), held for as long as `job` runs from it."""
    prefix = ensure(name)
    with _locked(name, job, shared=True):
        if not is_ready(name):  # a build failed between ensure and the lock
            raise EnvError(f"the {name} environment ({prefix}) is not built; run "
                           f"`persona setup --env {name}`")
        yield prefix


def _build(name: str, prefix: Path) -> None:
    requirements, fixes = _spec(name)
    log = prefix.parent / f"{name}-install.log"
    print(f"persona: building the {name} environment from {requirements.relative_to(REPO_ROOT)} "
          f"(once; several minutes; log: {log})", flush=True)
    started = time.monotonic()
    if prefix.exists():
        shutil.rmtree(prefix)
    base_python = getattr(sys, "_base_executable", sys.executable)
    pip = [str(prefix / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off"]
    steps = [
        ("create the virtual environment", [base_python, "-m", "venv", str(prefix)]),
        ("upgrade pip", [*pip, "--upgrade", "pip"]),
        (f"install {requirements.name}", [*pip, "-r", str(requirements)]),
    ]
    with log.open("w") as out:
        for label, step in steps:
            print(f"persona:   {label}", flush=True)
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise EnvError(f"building the {name} environment failed: {label}\n"
                               f"see {log}:\n{tail(log, 25)}")
    importlib.import_module(fixes).fix_env(prefix)
    (prefix / ".persona-stamp").write_text(_fingerprint(requirements, fixes) + "\n")
    print(f"persona: {name} environment ready in {time.monotonic() - started:.0f} s", flush=True)


def site_packages(prefix: Path) -> Path:
    """The site-packages folder of the environment at prefix (its install_fixes mend it)."""
    found = sorted(Path(prefix).glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {prefix}")
    return found[-1]


def _python_env(bin_dir: Path, virtual_env: str | None) -> dict[str, str]:
    """XTuner re-launches its scripts with a bare `python`, so the interpreter's bin must come
    first on PATH; PYTHONPATH gives the child this source tree."""
    return child_env({"PYTHONHOME": None, "VIRTUAL_ENV": virtual_env}, first_on_path=bin_dir,
                     source_tree=True,
                     defaults={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})


def command_env(name: str) -> dict[str, str]:
    """Environment variables that make a child run inside `name`."""
    prefix = env_dir(name)
    return _python_env(prefix / "bin", str(prefix))


def external_python(name: str) -> Path | None:
    """PERSONA_TRAIN_PYTHON: an interpreter that already holds the training stack (a GPU image
    with torch, where XTuner was installed beside it), used instead of building the train env."""
    value = os.environ.get("PERSONA_TRAIN_PYTHON") if name == "train" else None
    return Path(value) if value else None


def run_module(name: str, module: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run `python -m module args` inside environment `name` (built first if needed, and held
    while it runs), as a child that goes when persona goes (persona.services.run)."""
    external = external_python(name)
    if external:
        command = [str(external), "-m", module, *args]
        return subprocess.CompletedProcess(
            command, services.run(command, _python_env(external.parent, None), cwd=REPO_ROOT))
    with using(name, f"python -m {module}"):
        command = [str(python(name)), "-m", module, *args]
        return subprocess.CompletedProcess(
            command, services.run(command, command_env(name), cwd=REPO_ROOT))
