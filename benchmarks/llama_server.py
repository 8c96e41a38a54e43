"""llama.cpp's own HTTP server (`llama-server`, parallel slots, continuous batching) for the
serving benchmark, compiled from the llama-cpp-python source archive that the gguf environment
pins (PyPI has no prebuilt llama.cpp server): the same llama.cpp the export's check runs.

    .venv/bin/python benchmarks/llama_server.py     # builds it (once; minutes), prints its path

The web UI is left out (its assets would come from a hub); the server's API is complete.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from persona import envs  # noqa: E402
from persona.paths import home  # noqa: E402
from persona.run_folder import RunFolder  # noqa: E402
from persona.serve.gguf import gguf_name  # noqa: E402
from persona.serve.gguf_install import pinned_version, source_archive  # noqa: E402
from persona.services import spawn  # noqa: E402

CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF",
               "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF",
               "-DLLAMA_USE_PREBUILT_UI=OFF"]


def binary() -> Path:
    return home() / "bench" / f"llama.cpp-{pinned_version()}" / "build" / "bin" / "llama-server"


def build() -> Path:
    """llama-server, compiled once per pinned version; its path."""
    target = binary()
    if target.is_file():
        return target
    root = target.parent.parent.parent
    source = root / "src"
    log = root / "build.log"
    root.mkdir(parents=True, exist_ok=True)
    print(f"building llama-server {pinned_version()} (once; minutes; log: {log})", flush=True)
    with tempfile.TemporaryDirectory() as tmp, log.open("w") as out:
        archive = source_archive(envs.python("gguf"), Path(tmp))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            for member in members:
                member.name = member.name.split("/vendor/llama.cpp/", 1)[1]
            tar.extractall(source, members=members, filter="data")
        jobs = str(os.cpu_count() or 1)
        for step in (["cmake", "-S", str(source), "-B", str(root / "build"), *CMAKE_FLAGS],
                     ["cmake", "--build", str(root / "build"), "--target", "llama-server",
                      "-j", jobs]):
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                sys.exit(f"building llama-server failed; see {log}")
    return target


def exported(run: RunFolder, quant: str) -> Path:
    """The run's GGUF file in `quant`: `persona export`'s, exported now if missing (a retrain
    deletes the exports, so one that is there was made from the weights beside it)."""
    gguf = run.exports / gguf_name(run.card().id, quant)
    if gguf.is_file():
        return gguf
    from persona.commands_export import export_run

    return export_run(run.card(), run, quant)[0]


def start(model: Path, port: int, key: str, slots: int, context: int,
          log: Path) -> subprocess.Popen:
    """llama-server on loopback with `slots` parallel sequences of `context` tokens each, every
    core, the chat template inside the GGUF file."""
    threads = str(os.cpu_count() or 1)
    command = [str(build()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--api-key", key, "--parallel", str(slots), "--ctx-size", str(slots * context),
               "--threads", threads, "--threads-batch", threads, "--jinja", "--no-webui"]
    return spawn(command, dict(os.environ), log)


if __name__ == "__main__":
    print(build())
