"""Post-install fixes for the training env, run after `pip install -r requirements/train.txt`.

Stdlib only (the app env calls `fix_env(prefix)`); safe to run any number of times.

1. XTuner 0.2.0's metadata pins bitsandbytes==0.45.0, which refuses to load without CUDA; the
   0.50.x in requirements/train.txt runs on CPU. pip cannot override a dependency's pin, so
   requirements/train.txt lists XTuner's dependencies itself and names XTuner on a
   `# no-deps:` line, installed here with --no-deps.
2. PyPI's torchvision is a CUDA build: beside the CPU torch its C++ ops do not load and two
   unguarded `register_fake("torchvision::nms"/"qnms")` calls then fail at import. XTuner (via
   its InternVL dataset) and transformers import torchvision, never its ops; guard those two
   registrations the way torchvision guards the others (`extension._has_ops()`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from persona.envs import site_packages

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements" / "train.txt"
NO_DEPS_LINE = re.compile(r"^#\s*no-deps:\s*(\S+)==(\S+)\s*$", re.M)

UNGUARDED = re.compile(r'^@torch\.library\.register_fake\(("torchvision::\w+")\)$', re.M)
GUARDED = r"@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda fn: fn))"


def no_deps_pins(requirements: Path = REQUIREMENTS) -> list[tuple[str, str]]:
    """(name, version) of the packages requirements/train.txt says to install without deps."""
    return NO_DEPS_LINE.findall(requirements.read_text())


def _installed(sp: Path, name: str, version: str) -> bool:
    dist = name.replace("-", "_")
    return any(path.name.lower() == f"{dist}-{version}.dist-info".lower()
               for path in sp.glob("*.dist-info"))


def install_no_deps(prefix: Path) -> None:
    sp = site_packages(prefix)
    missing = [f"{name}=={version}" for name, version in no_deps_pins()
               if not _installed(sp, name, version)]
    if missing:
        subprocess.run([str(Path(prefix) / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--progress-bar", "off", "--no-deps", *missing], check=True)


def guard_torchvision_fakes(prefix: Path) -> None:
    target = site_packages(prefix) / "torchvision" / "_meta_registrations.py"
    if not target.exists():
        return
    source = target.read_text()
    patched = UNGUARDED.sub(GUARDED, source)
    if patched != source:
        target.write_text(patched)


def fix_env(prefix: Path) -> None:
    prefix = Path(prefix)
    install_no_deps(prefix)
    guard_torchvision_fakes(prefix)
    # Proof, not hope: the env must import what training imports.
    subprocess.run([str(prefix / "bin" / "python"), "-c",
                    "import torchvision, xtuner.dataset, transformers.modeling_utils, bitsandbytes"],
                   check=True)
