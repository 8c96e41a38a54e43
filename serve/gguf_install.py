"""Post-install step of the gguf environment: llama.cpp's converter beside llama-cpp-python.

PyPI ships llama.cpp's `convert_hf_to_gguf.py` only inside llama-cpp-python's source archive (the
`gguf` wheel has the file format, not the converter), and a converter must match the gguf-py it
was written with. So the converter, its `conversion/` package and that gguf-py are taken from the
very source archive the environment compiled, into `<env>/llama.cpp/` (the converter puts its
gguf-py first on sys.path itself).

Stdlib only: the app env calls this on the gguf env's prefix after
`pip install -r requirements/gguf.txt`. Safe to run any number of times.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from persona.paths import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "requirements" / "gguf.txt"
PINNED = re.compile(r"^llama-cpp-python==(\S+)", re.M)
# What the converter needs of llama.cpp's tree (paths below vendor/llama.cpp/ in the archive).
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")


def converter(prefix: Path) -> Path:
    return Path(prefix) / "llama.cpp" / "convert_hf_to_gguf.py"


def pinned_version() -> str:
    match = PINNED.search(REQUIREMENTS.read_text())
    if not match:
        raise RuntimeError(f"{REQUIREMENTS} pins no llama-cpp-python==VERSION")
    return match.group(1)


def _extract(archive: Path, target: Path) -> int:
    """The converter's parts of the archive's vendor/llama.cpp/ into target; files written."""
    written = 0
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, sep, inside = member.name.partition("/vendor/llama.cpp/")
            if not sep or not member.isfile() or not inside.startswith(CONVERTER_PARTS):
                continue
            path = target / inside
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            path.write_bytes(source.read())
            written += 1
    return written


def source_archive(python: Path, folder: Path) -> Path:
    """llama-cpp-python's pinned source archive, downloaded into folder by `python`'s pip (its
    cache still holds the archive the environment compiled: no second download)."""
    subprocess.run([str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                    ":all:", f"llama-cpp-python=={pinned_version()}", "-d", str(folder)],
                   check=True)
    return next(Path(folder).glob("llama_cpp_python-*.tar.gz"))


def fix_env(prefix: Path) -> None:
    prefix = Path(prefix)
    target = prefix / "llama.cpp"
    with tempfile.TemporaryDirectory() as tmp:
        archive = source_archive(prefix / "bin" / "python", Path(tmp))
        if target.exists():
            shutil.rmtree(target)
        if not _extract(archive, target) or not converter(prefix).is_file():
            raise RuntimeError(f"{archive.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
