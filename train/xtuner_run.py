"""XTuner's commands as child processes: its console script, the environment it needs, and a
log per command in the run's work dir."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from persona import services
from persona.run_folder import RunFolder
from persona.train.progress import PipelineError


def child_env(run: RunFolder) -> dict[str, str]:
    """XTuner re-launches its scripts with a bare `python`: this interpreter's bin goes first.
    The source tree goes on PYTHONPATH so the generated config can import persona.train.*
    (never a bare `train`: under `xtuner train` the folder of xtuner/tools/train.py would
    shadow it)."""
    return services.child_env(
        {"PYTHONUNBUFFERED": "1",  # progress lines as they happen, not when a pipe buffer fills
         "HF_DATASETS_CACHE": str(run.datasets_cache)},
        first_on_path=Path(sys.executable).parent, source_tree=True,
        defaults={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                  "TOKENIZERS_PARALLELISM": "false"})


def xtuner_command() -> list[str]:
    """XTuner's console script beside this interpreter, or its entry point through it (where the
    stack was installed with `pip --target`, which leaves the script elsewhere)."""
    script = Path(sys.executable).parent / "xtuner"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from xtuner.entry_point import cli; sys.exit(cli())"]


def run_logged(command: list[str], log: Path, env: dict[str, str], on_line=None) -> None:
    """Run a command, appending its output to `log`; `on_line` sees each line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=env, text=True, errors="replace", bufsize=1)
        for line in process.stdout:
            out.write(line)
            if on_line:
                on_line(line.rstrip("\n"))
        process.wait()
    if process.returncode != 0:
        raise PipelineError(f"{log.stem} exited {process.returncode}; see {log}")


# Resuming: mmengine's torch.load of the run's own checkpoint (optimizer and its log state, not
# just tensors), which torch's weights-only default refuses. Only `xtuner train --resume` gets it,
# and only for a checkpoint in the run's work/ (RunFolder.last_checkpoint); persona itself loads
# no checkpoint with torch.load. XTuner's pth_to_hf passes weights_only=False on its own, on the
# same checkpoint; neither call can be changed from here.
RESUME_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


@dataclass
class XTuner:
    """How this run calls XTuner: the command and the environment every call gets (a resume
    also RESUME_ENV)."""

    command: list[str]
    env: dict[str, str]

    def __call__(self, args: list[str], log: Path, on_line=None) -> None:
        env = {**self.env, **RESUME_ENV} if "--resume" in args else self.env
        run_logged([*self.command, *args], log, env, on_line)
