"""vLLM against llama.cpp and a Hugging Face `generate` baseline on the same model, prompts and
max tokens, in one run; prints a table (and writes JSON) of output tokens/s, time to first token
and time per output token.

    .venv/bin/python benchmarks/serve_bench.py --run ~/.cache/persona/runs/lingxi

Every request generates exactly --max-tokens tokens (the end token is ignored on every side), so
all do the same work. The baseline answers one request at a time, like a web demo calling
`model.generate`; vLLM and llama.cpp's own server (`llama-server`, compiled by
benchmarks/llama_server.py, one slot per concurrent request) get concurrency 1, 8 and 32 through
their OpenAI APIs on loopback, llama.cpp on the GGUF files `persona export` writes (--llama-cpp
picks the quantisations).
--configs picks vLLM settings to compare (see CONFIGS); each is started, measured (start-up time,
resident memory of all its processes) and stopped in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # llama_server

from persona import envs  # noqa: E402
from persona.paths import home  # noqa: E402
from persona.run_folder import RunFolder  # noqa: E402
from persona.services import free_port, stop, wait_http  # noqa: E402
from persona.stats import percentile  # noqa: E402
from persona.serve.host import CpuFit, fit, usable_cpus  # noqa: E402
from persona.serve.server import ServeOptions, start  # noqa: E402

KEY = "sk-bench-local"
EXTRA_QUESTIONS = ["What is the capital of France?", "Explain what a CPU does.",
                   "Write a short poem about the sea.", "用一句话介绍长城。"]


def _configs(run: RunFolder, served: str) -> dict[str, dict]:
    """Named changes to persona's serving defaults (ServeOptions fields)."""
    auto = CpuFit("auto", None, fit().kv_cache_gib)
    iomp = str(envs.env_dir("serve") / "lib" / "libiomp5.so")
    cores = usable_cpus()
    uniproc = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": str(len(cores)),
               "GOMP_CPU_AFFINITY": " ".join(map(str, cores))}
    return {
        "persona": {},  # what `persona serve` does: eager, every core, prefix caching on
        "vllm-threads": {"cpu": auto},  # vLLM's own binding: one core kept for its scheduler
        "no-prefix-cache": {"prefix_caching": False},
        "no-chunked-prefill": {"chunked_prefill": False},
        "max-seqs-8": {"max_num_seqs": 8},
        "max-seqs-64": {"max_num_seqs": 64},
        "stream-4": {"stream_interval": 4},
        "compiled": {"enforce_eager": False},
        "bf16": {"dtype": "bfloat16"},
        # Intel's OpenMP (shipped in the serve env) instead of the libgomp vLLM preloads.
        "iomp": {"_env": {"LD_PRELOAD": iomp}},
        "bf16-compiled": {"dtype": "bfloat16", "enforce_eager": False},
        "bf16-iomp": {"dtype": "bfloat16", "_env": {"LD_PRELOAD": iomp}},
        # libgomp's idle threads sleep at once instead of spinning, leaving the cores to the
        # API server and scheduler processes between the model's parallel regions.
        "omp-passive": {"_env": {"OMP_WAIT_POLICY": "PASSIVE"}},
        # The model runs inside the engine-core process (vLLM's uniproc executor) instead of a
        # third worker process: no hand-over between processes at every step. vLLM then sets no
        # OpenMP variables, so they are given here.
        "uniproc": {"_env": uniproc},
        # The base once, the persona as a LoRA adapter (what `persona serve --adapters` does).
        "lora": {"model": None, "served_name": "base", "chat_template": run.chat_template,
                 "lora_modules": ((served, run.adapter),)},
    }


@dataclass
class Level:
    engine: str
    concurrency: int
    requests: int
    tokens: int
    wall_s: float
    ttft_p50: float
    ttft_p95: float
    latency_p50: float
    tpot_p50: float  # time per output token after the first, the median request's
    reconnects: int = 0  # requests sent again after the server closed their connection

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def level(engine: str, concurrency: int, wall: float, rows: list[dict]) -> Level:
    ttft = [r["ttft"] for r in rows]
    tpot = [(r["latency"] - r["ttft"]) / max(1, r["tokens"] - 1) for r in rows]
    return Level(engine, concurrency, len(rows), sum(r["tokens"] for r in rows), wall,
                 percentile(ttft, 0.5), percentile(ttft, 0.95),
                 statistics.median(r["latency"] for r in rows), statistics.median(tpot),
                 sum(r.get("reconnects", 0) for r in rows))


def prompts(run: RunFolder, count: int) -> list[str]:
    held_out = [q["question"] for q in run.read_heldout()]
    pool = held_out + EXTRA_QUESTIONS
    return [pool[i % len(pool)] for i in range(count)]


# ---------------------------------------------------------------------------- baseline


def hf_baseline(run: RunFolder, questions: list[str], max_tokens: int) -> tuple[Level, dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(questions, handle, ensure_ascii=False)
    result = subprocess.run([str(envs.python("serve")), str(REPO / "benchmarks" / "hf_generate.py"),
                             str(run.merged), handle.name, str(max_tokens)],
                            env=envs.command_env("serve"), capture_output=True, text=True)
    os.unlink(handle.name)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        sys.exit(f"the transformers baseline failed:\n{result.stderr[-3000:]}")
    data = json.loads(lines[-1][len("RESULT "):])
    return level("transformers", 1, data["wall_s"], data["requests"]), data


# ---------------------------------------------------------------------------- vLLM


def group_memory_gib(session: int) -> tuple[float, float]:
    """(current, peak) resident memory summed over every process of the server's session."""
    now = peak = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # field 6 of /proc/PID/stat: the session id
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        now += int(values.get("VmRSS", "0 kB").split()[0])
        peak += int(values.get("VmHWM", "0 kB").split()[0])
    return now / 2**20, peak / 2**20


async def drive(base_url: str, model: str, questions: list[str], concurrency: int,
                max_tokens: int) -> tuple[float, list[dict]]:
    import openai
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)

    async def one(question: str) -> dict:
        async with gate:
            for attempt in range(3):
                begin = time.perf_counter()
                try:
                    stream = await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": question}],
                        temperature=0, max_tokens=max_tokens, stream=True,
                        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
                    break
                except openai.APIConnectionError:
                    # llama-server (cpp-httplib) may close a kept-alive connection just as the
                    # next request goes out on it; that request never ran, so it is sent again
                    # on a new connection, and counted
                    if attempt == 2:
                        raise
            first = None
            tokens = chunks = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    chunks += 1
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            end = time.perf_counter()
            # a server that reports no usage streams one token per chunk
            return {"ttft": (first or end) - begin, "latency": end - begin,
                    "tokens": tokens or chunks, "reconnects": attempt}

    begin = time.perf_counter()
    rows = await asyncio.gather(*(one(q) for q in questions))
    wall = time.perf_counter() - begin
    await client.close()
    return wall, rows


def measure(name: str, process, health_url: str, base_url: str, model: str, run: RunFolder,
            levels: list[int], max_tokens: int, min_requests: int, log: Path,
            began: float) -> dict:
    """One started server, whichever engine: its start-up (from `began` to /health), memory, and
    output tok/s at each concurrency level after a warm-up; stopped at the end."""
    try:
        wait_http(health_url, process, log, timeout=900, what=name)
        startup = time.perf_counter() - began
        idle_rss, _ = group_memory_gib(process.pid)
        asyncio.run(drive(base_url, model, prompts(run, 2), 2, 8))  # warm-up
        results = []
        for concurrency in levels:
            questions = prompts(run, max(min_requests, 2 * concurrency))
            wall, rows = asyncio.run(drive(base_url, model, questions, concurrency, max_tokens))
            results.append(level(name, concurrency, wall, rows))
            print(f"  {name} c={concurrency}: {results[-1].tokens_per_s:.1f} tok/s", flush=True)
        _, peak = group_memory_gib(process.pid)
        return {"name": name, "startup_s": startup, "rss_idle_gib": idle_rss,
                "rss_peak_gib": peak, "levels": results}
    finally:
        stop(process)


def bench_vllm(name: str, options: ServeOptions, run: RunFolder, levels: list[int], max_tokens: int,
               min_requests: int, log_dir: Path) -> dict:
    log = log_dir / f"vllm-{name}.log"
    began = time.perf_counter()
    process = start(options, envs.ensure("serve"), log)
    model = options.lora_modules[0][0] if options.lora_modules else options.served_name
    return measure(f"vllm:{name}", process, options.health_url, options.base_url, model, run,
                   levels, max_tokens, min_requests, log, began)


# ---------------------------------------------------------------------------- llama.cpp


def bench_llama_cpp(quant: str, run: RunFolder, levels: list[int], max_tokens: int,
                    min_requests: int, log_dir: Path) -> dict:
    """llama-server on the run's GGUF export in `quant`, one slot per concurrent request."""
    import llama_server

    gguf = llama_server.exported(run, quant)
    port, log = free_port(), log_dir / f"llama-server-{quant}.log"
    llama_server.build()
    began = time.perf_counter()
    process = llama_server.start(gguf, port, KEY, max(levels), context=512, log=log)
    return measure(f"llama.cpp:{quant}", process, f"http://127.0.0.1:{port}/health",
                   f"http://127.0.0.1:{port}/v1", "persona", run, levels, max_tokens,
                   min_requests, log, began) | {"gguf_bytes": gguf.stat().st_size,
                                                "server": "llama-server"}


# ---------------------------------------------------------------------------- report


def table(baseline: Level, runs: list[dict], base_info: dict) -> str:
    rows = ["| engine | concurrency | requests | output tok/s | × baseline | TTFT p50 | TTFT p95 | time per output token p50 | latency p50 | sent again |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for item in [baseline] + [lv for run in runs for lv in run["levels"]]:
        rows.append(f"| {item.engine} | {item.concurrency} | {item.requests} | {item.tokens_per_s:.1f} | "
                    f"{item.tokens_per_s / baseline.tokens_per_s:.1f}× | {item.ttft_p50 * 1000:.0f} ms | "
                    f"{item.ttft_p95 * 1000:.0f} ms | {item.tpot_p50 * 1000:.1f} ms | {item.latency_p50:.2f} s | "
                    f"{item.reconnects} |")
    rows += ["", "| engine | start-up | RSS idle | RSS peak |", "|---|---:|---:|---:|",
             f"| transformers | {base_info['load_s']:.1f} s (load) | – | {base_info['rss_gib']:.2f} GiB |"]
    for run in runs:
        rows.append(f"| {run['name']} | {run['startup_s']:.1f} s | {run['rss_idle_gib']:.2f} GiB | "
                    f"{run['rss_peak_gib']:.2f} GiB |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished persona run folder")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=16,
                        help="requests per level (at least twice the concurrency) and for the baseline")
    parser.add_argument("--levels", default="1,8,32", help="vLLM concurrency levels")
    parser.add_argument("--configs", default="persona",
                        help="comma-separated vLLM settings to compare: " + ", ".join(_configs(RunFolder(Path(".")), "x")))
    parser.add_argument("--no-baseline", action="store_true", help="skip transformers (knob comparisons)")
    parser.add_argument("--llama-cpp", default="f32,q8_0",
                        help="GGUF quantisations llama.cpp serves, comma-separated ('' for none)")
    parser.add_argument("--out", type=Path, default=home() / "bench",
                        help="where the JSON and the server logs go (default: $PERSONA_HOME/bench)")
    parser.add_argument("--result", type=Path,
                        help="the result JSON (default: OUT/serve_bench.json); the table beside it "
                             "as .md")
    args = parser.parse_args()

    run = RunFolder.at(args.run)
    served = run.read_manifest()["card"]["id"]
    args.out.mkdir(parents=True, exist_ok=True)
    known = _configs(run, served)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if unknown := [n for n in names if n not in known]:
        sys.exit(f"unknown config(s) {unknown}; choose from {list(known)}")
    levels = [int(x) for x in args.levels.split(",")]
    base_model = Path(run.read_manifest()["base_model"])

    print(f"machine: {os.cpu_count()} CPUs; persona's fit: {fit()}", flush=True)
    if args.no_baseline:
        baseline, base_info = None, None
    else:
        print("transformers generate, one request at a time ...", flush=True)
        baseline, base_info = hf_baseline(run, prompts(run, args.requests), args.max_tokens)
        print(f"  transformers: {baseline.tokens_per_s:.1f} tok/s", flush=True)

    runs = []
    for name in names:
        change = dict(known[name])
        extra_env = change.pop("_env", {})
        if "model" in change:
            change["model"] = base_model
        options = replace(ServeOptions(model=run.merged, served_name=served, api_key=KEY,
                                       port=free_port()), **change)
        print(f"vLLM {name}: {asdict(options) | {'api_key': '-'}}", flush=True)
        saved = {k: os.environ.get(k) for k in extra_env}
        os.environ.update(extra_env)  # vllm_env starts from this process's environment
        try:
            runs.append(bench_vllm(name, options, run, levels, args.max_tokens, args.requests, args.out))
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)

    for quant in [q.strip() for q in args.llama_cpp.split(",") if q.strip()]:
        print(f"llama.cpp {quant}: llama-server, {max(levels)} slots", flush=True)
        runs.append(bench_llama_cpp(quant, run, levels, args.max_tokens, args.requests, args.out))

    result = {"baseline": baseline and asdict(baseline), "baseline_info": base_info,
              "runs": [{**r, "levels": [asdict(lv) | {"tokens_per_s": lv.tokens_per_s} for lv in r["levels"]]}
                       for r in runs], "max_tokens": args.max_tokens, "cpus": os.cpu_count()}
    result_file = args.result or args.out / "serve_bench.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=1, default=str))
    if baseline:
        text = table(baseline, runs, base_info)
        # the run named by its card, not by this machine's path to it
        shown = [f"<{served}'s run folder>" if arg in (str(args.run), str(run.root)) else arg
                 for arg in sys.argv[1:]]
        command = "python benchmarks/serve_bench.py " + " ".join(shown)
        result_file.with_suffix(".md").write_text(f"`{command}`\n\n{text}\n")
        print("\n" + text)
    else:
        for r in runs:
            for lv in r["levels"]:
                print(f"| {r['name']} | {lv.concurrency} | {lv.tokens_per_s:.1f} tok/s | TTFT p50 "
                      f"{lv.ttft_p50 * 1000:.0f} ms p95 {lv.ttft_p95 * 1000:.0f} ms | start {r['startup_s']:.1f} s "
                      f"| RSS peak {r['rss_peak_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()
