"""Where vLLM's start-up goes: `persona serve`'s server started --starts times on a finished run,
each timed to /health and split into phases read from its own log, beside the bare cost of
importing torch and vLLM in the serve env and llama.cpp's server starting on the same persona's
GGUF export (its own start-up, the comparison a CPU user makes).

    .venv/bin/python benchmarks/startup_bench.py --run ~/.cache/persona/runs/xiaocong \
        --result docs/serving/startup.json

vLLM logs with one-second timestamps, so each phase is good to about a second; the phases are
the gaps between the first line each of its three processes writes (API server, engine core,
worker), the worker's "Loading weights took", the engine's "init engine (profile, create kv
cache, warmup model) took" and "Starting vLLM server".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # llama_server

from persona import envs  # noqa: E402
from persona.paths import home  # noqa: E402
from persona.run_folder import RunFolder  # noqa: E402
from persona.serve.server import ServeOptions, start  # noqa: E402
from persona.services import free_port, stop, wait_http  # noqa: E402

KEY = "sk-bench-local"
LINE = re.compile(r"^\((\w+) pid=\d+\) \w+ (\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")
MARKS = {"weights": "Loading weights took", "engine": "init engine (profile",
         "api": "Starting vLLM server"}


def _stamp(text: str, year: int) -> float:
    return datetime.strptime(f"{year}-{text}", "%Y-%m-%d %H:%M:%S").timestamp()


def phases(log: Path, launched: float, healthy: float) -> dict[str, float]:
    """Seconds per phase of one start, from its log (see the module's docstring)."""
    first: dict[str, float] = {}
    marks: dict[str, float] = {}
    year = datetime.fromtimestamp(launched).year
    for line in log.read_text(errors="replace").splitlines():
        match = LINE.match(line)
        if not match:
            continue
        process, stamp, message = match.groups()
        at = _stamp(stamp, year)
        first.setdefault(process, at)
        for name, text in MARKS.items():
            if text in message:
                marks.setdefault(name, at)
    steps = [("API server: interpreter, torch and vLLM imports, config", launched, first.get("APIServer")),
             ("engine core process: start and imports", first.get("APIServer"), first.get("EngineCore")),
             ("worker process: start and imports", first.get("EngineCore"), first.get("Worker")),
             ("worker: model load", first.get("Worker"), marks.get("weights")),
             ("engine: profile, KV cache, warm-up", marks.get("weights"), marks.get("engine")),
             ("API server: routes, chat template", marks.get("engine"), marks.get("api")),
             ("until /health answers", marks.get("api"), healthy)]
    return {name: round(end - begin, 1) for name, begin, end in steps
            if begin is not None and end is not None}


def vllm_start(run: RunFolder, served: str, log: Path) -> dict:
    options = ServeOptions(model=run.merged, served_name=served, api_key=KEY, port=free_port())
    log.unlink(missing_ok=True)
    launched = time.time()
    process = start(options, envs.ensure("serve"), log)
    try:
        wait_http(options.health_url, process, log, timeout=600, what="vLLM")
        healthy = time.time()
    finally:
        stop(process)
    return {"to_health_s": round(healthy - launched, 1), "phases": phases(log, launched, healthy)}


def import_cost(module: str) -> float:
    """Seconds for a fresh serve-env interpreter to import `module` (and exit)."""
    began = time.perf_counter()
    subprocess.run([str(envs.python("serve")), "-c", f"import {module}"], check=True,
                   env=envs.command_env("serve"), capture_output=True)
    return round(time.perf_counter() - began, 1)


def llama_cpp_start(run: RunFolder, quant: str, log: Path) -> float:
    import llama_server

    gguf = llama_server.exported(run, quant)
    llama_server.build()
    port = free_port()
    began = time.perf_counter()
    process = llama_server.start(gguf, port, KEY, slots=32, context=512, log=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process, log, timeout=300, what="llama-server")
        return round(time.perf_counter() - began, 1)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished persona run folder")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--result", type=Path, default=home() / "bench" / "startup.json")
    args = parser.parse_args()
    run = RunFolder.at(args.run)
    served = run.card().id
    logs = home() / "bench"
    logs.mkdir(parents=True, exist_ok=True)

    imports = {module: import_cost(module) for module in
               ("torch", "vllm", "vllm.entrypoints.openai.api_server")}
    print(f"imports in a fresh interpreter: {imports}", flush=True)
    starts = []
    for number in range(args.starts):
        starts.append(vllm_start(run, served, logs / "startup-vllm.log"))
        print(f"vLLM start {number + 1}: {starts[-1]}", flush=True)
    llama = [llama_cpp_start(run, quant, logs / f"startup-llama-{quant}.log")
             for quant in ("q8_0",) for _ in range(args.starts)]
    print(f"llama-server q8_0 to /health: {llama}", flush=True)

    median = {name: statistics.median(s["phases"].get(name, 0.0) for s in starts)
              for name in starts[0]["phases"]}
    result = {"cpus": os.cpu_count(), "imports_s": imports, "vllm_starts": starts,
              "vllm_to_health_median_s": statistics.median(s["to_health_s"] for s in starts),
              "vllm_phase_medians_s": median, "llama_server_q8_0_to_health_s": llama}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=1) + "\n")
    rows = ["| phase | median s |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in median.items()]
    rows.append(f"| **to /health** (median of {len(starts)}) | "
                f"**{result['vllm_to_health_median_s']:.1f}** |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
