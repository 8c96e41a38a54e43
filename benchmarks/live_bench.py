"""Personas on a live server, measured in one run: what adding a persona costs against a full
restart, the throughput of a served persona while another one is being loaded (against the same
load with nothing loading), and the memory each loaded adapter takes; writes a JSON result and
prints markdown tables.

    .venv/bin/python benchmarks/live_bench.py --run xiaocong=benchmark-runs/ci-run \\
        --run lingxi=benchmark-runs/lingxi-short --run moyan=benchmark-runs/moyan-new

Everything goes through the real CLI, as a user runs it: `persona serve --adapters SERVE_CARD`
(its start-up to /health is what a restart costs), then a load against that persona (--requests
chat requests at --concurrency, --max-tokens each with the end token ignored, greedy, the card's
system prompt sent as the UI sends it), the same load again with `persona add --card ADD_CARD`
started --add-after seconds into it (the batch full and decoding), counted over the whole load
and over the add's own window; --rounds times (the added persona is removed between rounds),
then once more with it idle beside the first. Then `persona add --card THIRD_CARD` with no load
(memory before and after, and after its first request), `persona list`, `persona remove` of the
second persona, and a restart: SIGTERM to `persona serve` (which stops vLLM) and the same
command again on the same port (its record brings back the personas it lists); stopped again,
no process of it may be left. Memory is the resident memory summed over vLLM's processes (its
session, as serve_bench.py measures it).

The runs are never trained here: each card's finished run (--run ID=FOLDER, default the card's
run in the cache) is hard-linked into a temporary runs folder (PERSONA_RUNS_DIR; their lock files
are copied, so the originals are never written), deleted at the end, as is the server's record
in $PERSONA_HOME/servers/ for the port this run used.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.serve_bench import group_memory_gib, prompts  # noqa: E402
from persona import envs  # noqa: E402
from persona.card import load_card  # noqa: E402
from persona.paths import home, runs_dir  # noqa: E402
from persona.run_folder import RunFolder, check_request  # noqa: E402
from persona.serve import live  # noqa: E402
from persona.serve.host import usable_cpus  # noqa: E402
from persona.serve.server import LIVE_MAX_LORAS  # noqa: E402
from persona.services import free_port, stop_signals_at_defaults, wait_http  # noqa: E402
from persona.stats import percentile  # noqa: E402

# `persona ...` as a user runs it, with /v1/load_lora_adapter timed from inside: the one call
# `persona add` makes to vLLM is wrapped, everything else is the CLI unchanged.
TIMED_CLI = """
import sys, time
from persona.serve import admin
_load = admin.load
def load(*args, **kwargs):
    begin = time.time()
    try:
        return _load(*args, **kwargs)
    finally:
        print(f"LIVE_BENCH_LOAD {begin:.6f} {time.time():.6f}", flush=True)
admin.load = load
from persona.cli import main
sys.exit(main(sys.argv[1:]))
"""
SETTLE_S = 3.0  # before a memory reading: the allocator and the engine's last step done


# ---------------------------------------------------------------------------- the machine


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "usable_cpus": len(usable_cpus()), "platform": platform.platform()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M).group(1).split())
        info["cpu_flags"] = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni",
                                            "amx_tile", "amx_bf16"})
        mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        info["memory_gib"] = round(int(mem.group(1)) / 2**20, 1)
    except (OSError, AttributeError):
        pass
    found = sorted(envs.env_dir("serve").glob("lib/python*/site-packages/vllm*.dist-info"))
    info["vllm"] = [p.name.removesuffix(".dist-info") for p in found]
    return info


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, ppid, session, command line) of every running process (no zombies)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        found.append((int(stat.parent.name), int(fields[1]), int(fields[3]), cmd.strip()))
    return found


def other_vllm() -> list[str]:
    return [f"{pid} {cmd[:160]}" for pid, _, _, cmd in _processes()
            if pid != os.getpid() and re.search(r"vllm (serve|--)|vllm\.entrypoints|VLLM::", cmd)]


def wait_for_quiet(limit_s: float) -> list[str]:
    """Wait (checking every 30 s) until no other vLLM runs here; what was found at first."""
    first = other_vllm()
    deadline = time.monotonic() + limit_s
    while (busy := other_vllm()) and time.monotonic() < deadline:
        print(f"another vLLM runs here, waiting: {busy}", flush=True)
        time.sleep(30)
    if busy:
        sys.exit(f"another vLLM still runs after {limit_s:.0f} s: {busy}")
    return first


# ---------------------------------------------------------------------------- runs folder


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.basename(src) in (".lock", ".persona-run"):  # written by persona: never shared
        shutil.copy2(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def runs_folder(cards: list[Path], given: dict[str, Path]) -> Path:
    """A temporary runs folder with each card's finished run under its id; refuses a card
    without one (nothing is trained here)."""
    root = Path(tempfile.mkdtemp(prefix="live-bench-runs-"))
    for card in cards:
        persona = load_card(card)
        source = given.get(persona.id, runs_dir() / persona.id).resolve()
        run = RunFolder(source)
        if not run.finished():
            shutil.rmtree(root)
            sys.exit(f"{source} is no finished run of {card}; pass --run {persona.id}=FOLDER")
        check_request(run, persona)
        shutil.copytree(source, root / persona.id, symlinks=True, copy_function=_link_or_copy)
    return root


def adapter_facts(folder: Path) -> dict:
    """Size on disk, and the LoRA weights' element count and dtype (safetensors header)."""
    weights = folder / "adapter_model.safetensors"
    with weights.open("rb") as handle:
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    params = sum(math.prod(v["shape"]) if v["shape"] else 1 for v in tensors.values())
    config = json.loads((folder / "adapter_config.json").read_text())
    return {"files_mib": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20,
            "weights_mib": weights.stat().st_size / 2**20, "tensors": len(tensors),
            "params": params, "dtypes": sorted({v["dtype"] for v in tensors.values()}),
            "float32_mib": params * 4 / 2**20, "rank": config.get("r"),
            "target_modules": config.get("target_modules")}


# ---------------------------------------------------------------------------- the server


class Server:
    """`persona serve --adapters CARD --port P` as a subprocess in a session of its own."""

    def __init__(self, card: Path, port: int, env: dict[str, str], log: Path):
        self.card, self.port, self.env, self.log = card, port, env, log
        self.url = f"http://127.0.0.1:{port}/v1"
        self.process: subprocess.Popen | None = None
        self.vllm_pid: int | None = None
        self.started: set[int] = set()  # the sessions of every start: none may be left

    def start(self) -> dict:
        begin = time.perf_counter()
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "persona.cli", "serve", "--adapters", str(self.card),
                 "--port", str(self.port)], env=self.env, cwd=REPO, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=stop_signals_at_defaults)
        self.started.add(self.process.pid)
        wait_http(f"http://127.0.0.1:{self.port}/health", self.process, self.log, timeout=900,
                  what="persona serve")
        startup = time.perf_counter() - begin
        self.vllm_pid = next(pid for pid, ppid, _, cmd in _processes()
                             if ppid == self.process.pid and "vllm" in cmd)
        self.started.add(self.vllm_pid)
        said = None
        for _ in range(50):  # the command prints it within a second of /health answering
            printed = self.log.read_bytes()[offset:].decode(errors="replace")
            if said := re.findall(r"vLLM ready in (\d+) s", printed):
                break
            time.sleep(0.1)
        return {"startup_s": startup, "vllm_ready_s_printed": int(said[-1]) if said else None}

    def rss_mib(self) -> dict:
        """vLLM's processes (its session) and the `persona serve` process itself, after a settle;
        the median of three readings."""
        time.sleep(SETTLE_S)
        readings = []
        for _ in range(3):
            readings.append(group_memory_gib(self.vllm_pid)[0] * 1024)
            time.sleep(0.5)
        return {"vllm_mib": statistics.median(readings),
                "vllm_peak_mib": group_memory_gib(self.vllm_pid)[1] * 1024,
                "cli_mib": group_memory_gib(self.process.pid)[0] * 1024}

    def sessions(self) -> set[int]:
        return set(self.started)

    def stop(self) -> dict:
        """SIGTERM to `persona serve`, as Ctrl-C would; it stops vLLM and exits."""
        begin = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        stopped = time.perf_counter() - begin
        time.sleep(1)
        left = [f"{pid} {cmd[:120]}" for pid, _, sid, cmd in _processes()
                if sid in self.sessions() or ("vllm" in cmd and f"--port {self.port} " in cmd + " ")]
        return {"stop_s": stopped, "exit_code": code, "left_running": left}

    def kill(self) -> None:
        """After an error: nothing of it may outlive the benchmark."""
        for session in self.sessions():
            for pid, _, sid, _ in _processes():
                if sid == session:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if self.process is not None:
            self.process.wait(timeout=30)


def persona_command(args: list[str], env: dict[str, str]) -> dict:
    """One `persona ...` command, timed end to end (the load call apart, for `add`)."""
    begin = time.time()
    result = subprocess.run([sys.executable, "-c", TIMED_CLI, *args], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=900,
                            preexec_fn=stop_signals_at_defaults)
    return _command_result(args, begin, time.time(), result.returncode, result.stdout, result.stderr)


def _command_result(args: list[str], begin: float, end: float, code: int, out: str, err: str) -> dict:
    row = {"command": "persona " + " ".join(args), "wall_s": end - begin, "exit_code": code,
           "started": begin, "ended": end,
           "output": [line for line in (out + err).splitlines() if not line.startswith("LIVE_BENCH")]}
    if found := re.search(r"LIVE_BENCH_LOAD ([\d.]+) ([\d.]+)", out):
        row["load_call_s"] = float(found.group(2)) - float(found.group(1))
        row["load_call"] = [float(found.group(1)), float(found.group(2))]
    return row


async def persona_command_async(args: list[str], env: dict[str, str]) -> dict:
    begin = time.time()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TIMED_CLI, *args, env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=stop_signals_at_defaults)
    out, err = await process.communicate()
    return _command_result(args, begin, time.time(), process.returncode, out.decode(), err.decode())


# ---------------------------------------------------------------------------- the load


async def drive(url: str, key: str, model: str, system: str, questions: list[str],
                concurrency: int, max_tokens: int, running: asyncio.Event | None = None,
                ignore_eos: bool = True) -> dict:
    """Streamed chat requests; each one's token count over time (vLLM's continuous usage
    figures), so that any window of the run can be counted. Failures are kept, not raised."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)

    async def one(question: str) -> dict:
        async with gate:
            begin = time.time()
            marks: list[tuple[float, int]] = []  # (when, completion tokens so far)
            text: list[str] = []
            try:
                stream = await client.chat.completions.create(
                    model=model, temperature=0, max_tokens=max_tokens, stream=True,
                    messages=[{"role": "system", "content": system},
                              {"role": "user", "content": question}],
                    stream_options={"include_usage": True, "continuous_usage_stats": True},
                    extra_body={"ignore_eos": ignore_eos})
                async for chunk in stream:
                    now = time.time()
                    count = marks[-1][1] if marks else 0
                    if chunk.usage is not None:
                        count = chunk.usage.completion_tokens
                    elif chunk.choices and chunk.choices[0].delta.content:
                        count += 1
                    if chunk.choices and chunk.choices[0].delta.content:
                        text.append(chunk.choices[0].delta.content)
                    if count > (marks[-1][1] if marks else 0):
                        marks.append((now, count))
                        if running is not None:
                            running.set()
            except Exception as error:  # counted as a failure, the load goes on
                return {"begin": begin, "end": time.time(), "marks": marks, "text": "".join(text),
                        "error": f"{type(error).__name__}: {str(error)[:300]}"}
            return {"begin": begin, "end": time.time(), "marks": marks, "text": "".join(text),
                    "error": None}

    begin = time.time()
    rows = await asyncio.gather(*(one(q) for q in questions))
    end = time.time()
    await client.close()
    return {"begin": begin, "end": end, "rows": rows}


def tokens_between(rows: list[dict], start: float, end: float) -> int:
    def upto(marks, when):
        return max((count for at, count in marks if at <= when), default=0)
    return sum(upto(r["marks"], end) - upto(r["marks"], start) for r in rows)


def summary(load: dict, max_tokens: int) -> dict:
    rows, wall = load["rows"], load["end"] - load["begin"]
    done = [r for r in rows if r["error"] is None and r["marks"]]
    ttft = [r["marks"][0][0] - r["begin"] for r in done]
    gaps = [b[0] - a[0] for r in done for a, b in zip(r["marks"], r["marks"][1:])]
    tokens = sum(r["marks"][-1][1] for r in done)
    return {"requests": len(rows), "failed": len(rows) - len(done),
            "short": sum(1 for r in done if r["marks"][-1][1] != max_tokens),
            "errors": sorted({r["error"] for r in rows if r["error"]}),
            "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "ttft_p50_s": percentile(ttft, 0.5) if ttft else None,
            "ttft_p95_s": percentile(ttft, 0.95) if ttft else None,
            "latency_p50_s": statistics.median([r["end"] - r["begin"] for r in done] or [0]),
            "token_gap_p50_s": percentile(gaps, 0.5) if gaps else None,
            "token_gap_max_s": max(gaps, default=None)}


def window(load: dict, start: float, end: float) -> dict:
    """Tokens/s of a load within [start, end] (times since the load began), and its longest
    pause between two tokens of one stream that overlaps the window."""
    base = load["begin"]
    a, b = base + start, base + end
    gaps = [y[0] - x[0] for r in load["rows"] for x, y in zip(r["marks"], r["marks"][1:])
            if x[0] < b and y[0] > a]
    return {"from_s": start, "to_s": end,
            "tokens_per_s": tokens_between(load["rows"], a, b) / (end - start) if end > start else None,
            "token_gap_max_s": max(gaps, default=None)}


def cpu_times(sessions: set[int]) -> dict:
    """The machine's busy and stolen CPU seconds so far (/proc/stat), and those of this process,
    its finished children (the `persona` commands) and vLLM's processes."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    ours = sum(os.times()[:4])
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(parts[3]) in sessions:
            ours += (int(parts[11]) + int(parts[12])) / tick
    return {"at": time.time(), "busy": (user + nice + system + irq + softirq) / tick,
            "steal": steal / tick, "ours": ours}


def cpu_share(before: dict, after: dict) -> dict:
    """Shares of the machine's CPU time (all cores) over an interval: ours (vLLM, the benchmark,
    the `persona` commands it ran), everything else, and what the hypervisor stole."""
    capacity = (after["at"] - before["at"]) * (os.cpu_count() or 1)
    ours = after["ours"] - before["ours"]
    return {"ours": ours / capacity,
            "others": max(0.0, after["busy"] - before["busy"] - ours) / capacity,
            "stolen": (after["steal"] - before["steal"]) / capacity}


# ---------------------------------------------------------------------------- the run


def round_result(idle: dict, busy: dict, add: dict, max_tokens: int, span: float) -> dict:
    """One idle load and one under `persona add`; each counted over the whole load, over the
    window from the add's start to its end or `span` seconds later, whichever is later (a
    shorter one holds a few decoding steps of 8 streams in lockstep: noise), and over the load
    call alone (its longest pause), in seconds since each load began."""
    row = {"idle": summary(idle, max_tokens) | {"cpu": idle["cpu"]},
           "during_add": summary(busy, max_tokens) | {"cpu": busy["cpu"]}, "add": add}
    shortest = min(idle["end"] - idle["begin"], busy["end"] - busy["begin"])
    spans = {"add_window": (add["started"], max(add["ended"], add["started"] + span))}
    if "load_call" in add:
        spans["load_call_window"] = tuple(add["load_call"])
    for name, (start, end) in spans.items():
        start, end = start - busy["begin"], min(end - busy["begin"], shortest)
        row["idle"][name] = window(idle, start, end)
        row["during_add"][name] = window(busy, start, end)
    return row


def bench(args: argparse.Namespace, log_dir: Path) -> dict:
    from persona.serve import admin

    cards = [args.serve_card.resolve(), args.add_card.resolve(), args.third_card.resolve()]
    served, added, third = (load_card(c) for c in cards)
    given = dict(item.split("=", 1) for item in args.run)
    root = runs_folder(cards, {k: Path(v) for k, v in given.items()})
    port = free_port()
    while live.record_path(port).exists() or live.template_path(port).exists():
        port = free_port()  # a port with a record would bring back the personas it lists
    key = "sk-live-bench-" + secrets.token_hex(8)
    env = {**os.environ, "PERSONA_RUNS_DIR": str(root), "PERSONA_API_KEY": key,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    server = Server(cards[0], port, env, log_dir / f"persona-serve-{port}.log")
    url = server.url
    questions = prompts(RunFolder(root / served.id), args.requests)
    system = served.default_system_prompt()
    add_second = ["add", "--card", str(cards[1]), "--server", url]
    remove_second = ["remove", added.id, "--server", url]
    result: dict = {"port": port, "runs_folder": str(root), "log": str(server.log),
                    "vllm_log": str(home() / "logs" / f"vllm-{served.id}-{port}.log"),
                    "cards": {p.id: str(c.relative_to(REPO) if c.is_relative_to(REPO) else c)
                              for p, c in zip((served, added, third), cards)}}

    async def load():
        before = cpu_times(server.sessions())
        done = await drive(url, key, served.id, system, questions, args.concurrency, args.max_tokens)
        return done | {"cpu": cpu_share(before, cpu_times(server.sessions()))}

    def ask(persona, question: str) -> str:
        reply = asyncio.run(drive(url, key, persona.id, persona.default_system_prompt(),
                                  [question], 1, 48, ignore_eos=False))["rows"][0]
        return reply["error"] or reply["text"]

    async def under_add() -> tuple[dict, dict]:
        traffic = asyncio.create_task(load())
        await asyncio.sleep(args.add_after)  # the batch is full and decoding
        adding = await persona_command_async(add_second, env)
        return await traffic, adding

    memory: dict = {}
    try:
        print(f"persona serve --adapters {cards[0].name} on port {port} ...", flush=True)
        result["start"] = server.start()
        print(f"  up in {result['start']['startup_s']:.1f} s", flush=True)
        memory["one persona, just started"] = server.rss_mib()
        asyncio.run(drive(url, key, served.id, system, questions[:4], 4, 8))  # warm-up
        rounds = []
        for number in range(args.rounds):
            print(f"round {number + 1}: idle load, then the same load with `persona add --card "
                  f"{cards[1].name}` {args.add_after:g} s into it ...", flush=True)
            idle = asyncio.run(load())
            if number == 0:
                memory["one persona, after a load"] = server.rss_mib()
            busy, add = asyncio.run(under_add())
            if number == 0:
                memory["two personas (second added under load)"] = server.rss_mib()
            rounds.append(round_result(idle, busy, add, args.max_tokens, args.window))
            print(f"  {rounds[-1]['idle']['tokens_per_s']:.1f} tok/s idle, "
                  f"{rounds[-1]['during_add']['tokens_per_s']:.1f} under the add; add "
                  f"{add['wall_s']:.2f} s, exit {add['exit_code']}", flush=True)
            if number < args.rounds - 1:  # the next round adds it again
                rounds[-1]["remove"] = persona_command(remove_second, env)
        print("the same load, the added persona idle beside it ...", flush=True)
        after_load = asyncio.run(load())
        after = summary(after_load, args.max_tokens) | {"cpu": after_load["cpu"]}
        answers = {f"{added.id}: 你是谁？": ask(added, "你是谁？")}
        memory["two personas, after a load"] = server.rss_mib()
        print(f"`persona add --card {cards[2].name}` with no load, list, remove ...", flush=True)
        add_idle = persona_command(["add", "--card", str(cards[2]), "--server", url], env)
        memory["three personas (third added idle)"] = server.rss_mib()
        answers[f"{third.id}: Who are you?"] = ask(third, "Who are you?")
        memory["three personas, after the third's first request"] = server.rss_mib()
        listed = persona_command(["list", "--server", url], env)
        removed = persona_command(remove_second, env)
        memory["two personas (second removed)"] = server.rss_mib()
        adapter = adapter_facts(next((root / live.SNAPSHOTS).iterdir()))
        print("restart: stop, and start again on the same port ...", flush=True)
        result["stop"] = server.stop()
        result["restart"] = server.start()  # the record brings back the personas it lists
        result["restart"]["models"] = [m["id"] for m in admin.models(url, key)]
        memory["restarted (its record's personas)"] = server.rss_mib()
    finally:
        print("stopping the server (SIGTERM to persona serve) ...", flush=True)
        if server.process is not None:
            try:
                result["final_stop"] = server.stop()
            finally:
                if server.process.poll() is None or result.get("final_stop", {}).get("left_running"):
                    server.kill()
        for path in (live.record_path(port), live.template_path(port),
                     live.servers_dir() / f"{port}.lock"):
            path.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)

    def median(*path: str) -> float | None:
        values = []
        for row in rounds:
            for step in path:
                row = row.get(step) if isinstance(row, dict) else None
            if row is not None:
                values.append(row)
        return statistics.median(values) if values else None

    rss = {name: reading["vllm_mib"] for name, reading in memory.items()}
    result.update({
        "rounds": rounds,
        "medians": {
            "idle_tokens_per_s": median("idle", "tokens_per_s"),
            "during_add_tokens_per_s": median("during_add", "tokens_per_s"),
            "idle_add_window_tokens_per_s": median("idle", "add_window", "tokens_per_s"),
            "during_add_add_window_tokens_per_s": median("during_add", "add_window", "tokens_per_s"),
            "idle_add_window_token_gap_max_s": median("idle", "add_window", "token_gap_max_s"),
            "during_add_add_window_token_gap_max_s": median("during_add", "add_window", "token_gap_max_s"),
            "add_wall_s": median("add", "wall_s"), "add_load_call_s": median("add", "load_call_s"),
            "remove_wall_s": median("remove", "wall_s")},
        "failed_requests": sum(r[k]["failed"] for r in rounds for k in ("idle", "during_add"))
        + after["failed"],
        "idle_after_add": after, "add_idle": add_idle, "list": listed, "remove": removed,
        "answers": answers, "memory_mib": memory,
        "memory_per_adapter_mib": {
            "second, added under load": rss["two personas (second added under load)"]
            - rss["one persona, after a load"],
            "third, added idle": rss["three personas (third added idle)"]
            - rss["two personas, after a load"],
            "third, after its first request": rss["three personas, after the third's first request"]
            - rss["two personas, after a load"],
            # both fresh and idle: the allocator holds no memory a load freed
            "one more at start (restart with two, first start with one)":
            rss["restarted (its record's personas)"] - rss["one persona, just started"]},
        "adapter": adapter,
        # vLLM allocates max_loras slots of --max-lora-rank at start, in the model's dtype
        # (float32 here): for these rank-16 adapters, each slot is the size of one adapter.
        "slots_at_start_mib_estimate": LIVE_MAX_LORAS * adapter["float32_mib"],
    })
    return result


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(result: dict) -> str:
    ids, m = list(result["cards"]), result["medians"]
    restart = result["stop"]["stop_s"] + result["restart"]["startup_s"]
    rows = ["| operation | seconds |", "|---|---:|",
            f"| `persona serve --adapters` ({ids[0]}) until /health answers | "
            f"{result['start']['startup_s']:.1f} |",
            f"| restart: SIGTERM until it exited ({result['stop']['stop_s']:.1f} s), start again "
            f"({result['restart']['startup_s']:.1f} s; its record brings back "
            f"{', '.join(result['restart']['models'][1:])}) | {restart:.1f} |",
            f"| `persona add` {ids[1]} under load, end to end (median of {len(result['rounds'])}) | "
            f"{_f(m['add_wall_s'], 2)} |",
            f"| … of which /v1/load_lora_adapter | {_f(m['add_load_call_s'], 2)} |",
            f"| `persona add` {ids[2]}, no load, end to end | {result['add_idle']['wall_s']:.2f} |",
            f"| … of which /v1/load_lora_adapter | {_f(result['add_idle'].get('load_call_s'), 2)} |",
            f"| `persona list` | {result['list']['wall_s']:.2f} |",
            f"| `persona remove` {ids[1]} | {result['remove']['wall_s']:.2f} |", "",
            f"| {ids[0]}: {result['settings']['requests']} requests at concurrency "
            f"{result['settings']['concurrency']} | idle tok/s | under the add | in the add's window: "
            f"idle | under the add | longest token gap there: idle | under the add | add s | "
            f"load call s | failed | other work's CPU: idle / under the add |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for number, row in enumerate(result["rounds"], 1):
        idle, busy, add = row["idle"], row["during_add"], row["add"]
        rows.append(f"| round {number} | {idle['tokens_per_s']:.1f} | {busy['tokens_per_s']:.1f} | "
                    f"{_f(idle['add_window']['tokens_per_s'])} | {_f(busy['add_window']['tokens_per_s'])} | "
                    f"{_ms(idle['add_window']['token_gap_max_s'])} | "
                    f"{_ms(busy['add_window']['token_gap_max_s'])} | {add['wall_s']:.2f} | "
                    f"{_f(add.get('load_call_s'), 2)} | {idle['failed'] + busy['failed']} | "
                    f"{idle['cpu']['others']:.0%} / {busy['cpu']['others']:.0%} |")
    rows.append(f"| **median** | {_f(m['idle_tokens_per_s'])} | {_f(m['during_add_tokens_per_s'])} | "
                f"{_f(m['idle_add_window_tokens_per_s'])} | {_f(m['during_add_add_window_tokens_per_s'])} | "
                f"{_ms(m['idle_add_window_token_gap_max_s'])} | "
                f"{_ms(m['during_add_add_window_token_gap_max_s'])} | {_f(m['add_wall_s'], 2)} | "
                f"{_f(m['add_load_call_s'], 2)} | {result['failed_requests']} in all | |")
    after = result["idle_after_add"]
    rows.append(f"| idle, {ids[1]} loaded beside it | {after['tokens_per_s']:.1f} | | | | | | | | "
                f"{after['failed']} | {after['cpu']['others']:.0%} |")
    rows += ["", "| vLLM resident memory (all its processes) | MiB | change |", "|---|---:|---:|"]
    previous = None
    for name, reading in result["memory_mib"].items():
        value = reading["vllm_mib"]
        rows.append(f"| {name} | {value:.0f} | {'' if previous is None else f'{value - previous:+.1f}'} |")
        previous = value
    ad = result["adapter"]
    rows += ["", f"adapter on disk: {ad['files_mib']:.1f} MiB ({ad['params']:,} LoRA weights in "
             f"{'/'.join(ad['dtypes'])}; {ad['float32_mib']:.1f} MiB as float32, rank {ad['rank']}); "
             f"{result['settings']['max_loras']} slots allocated at start ≈ "
             f"{result['slots_at_start_mib_estimate']:.0f} MiB (estimate)"]
    return "\n".join(rows)


def portable(text: str, runs: str | None) -> str:
    """The result without this machine's folders: the checkout, the cache, the temporary runs."""
    for folder, name in ((runs, "$RUNS"), (str(home()), "$PERSONA_HOME"), (str(REPO) + "/", "")):
        if folder:
            text = text.replace(folder, name)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-card", type=Path, default=REPO / "cards" / "xiaocong.yaml",
                        help="the persona the server starts with, and the load is sent to")
    parser.add_argument("--add-card", type=Path, default=REPO / "cards" / "lingxi.yaml",
                        help="the persona added under load (and removed between rounds)")
    parser.add_argument("--third-card", type=Path, default=REPO / "benchmarks" / "cards" / "moyan.yaml",
                        help="the persona added with no load (memory)")
    parser.add_argument("--run", action="append", default=[], metavar="ID=FOLDER",
                        help="a card's finished run (default: the card's run in the cache)")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="idle load + load under the add, each")
    parser.add_argument("--add-after", type=float, default=5.0,
                        help="seconds into the load when `persona add` starts")
    parser.add_argument("--window", type=float, default=8.0,
                        help="seconds from the add's start over which both loads are compared")
    parser.add_argument("--wait-other", type=float, default=900,
                        help="seconds to wait for another vLLM on this machine to end")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "serving" / "live-personas.json")
    parser.add_argument("--log-dir", type=Path, default=home() / "bench" / "live",
                        help="where `persona serve`'s output goes (vLLM's log: $PERSONA_HOME/logs)")
    args = parser.parse_args()
    if any("=" not in item for item in args.run):
        sys.exit("--run takes ID=FOLDER")

    args.log_dir.mkdir(parents=True, exist_ok=True)
    others = wait_for_quiet(args.wait_other)
    facts = machine()
    print(f"machine: {facts}", flush=True)
    began = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    measured = bench(args, args.log_dir)
    result = {"date": began.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": facts,
              "command": ".venv/bin/python benchmarks/live_bench.py " + " ".join(sys.argv[1:]),
              "settings": {"requests": args.requests, "concurrency": args.concurrency,
                           "max_tokens": args.max_tokens, "greedy": True, "ignore_eos": True,
                           "rounds": args.rounds, "add_after_s": args.add_after,
                           "window_s": args.window,
                           "max_loras": LIVE_MAX_LORAS,
                           "max_cpu_loras": f"vLLM's default, max_loras ({LIVE_MAX_LORAS})"},
              "other_vllm_at_start": others,
              "load_average": {"at_start": load_before, "at_end": os.getloadavg()}, **measured}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1, ensure_ascii=False, default=str)
    args.out.write_text(portable(text, measured.get("runs_folder")) + "\n")
    print("\n" + table(result))
    print(f"\nresult: {args.out}")
    wrong = [f"{result['failed_requests']} failed requests"] if result["failed_requests"] else []
    wrong += [f"{step['command']} exited {step['exit_code']}"
              for step in [r["add"] for r in result["rounds"]] + [r["remove"] for r in result["rounds"]
                                                                  if "remove" in r]
              + [result["add_idle"], result["list"], result["remove"]] if step["exit_code"]]
    wrong += [f"left running: {result['final_stop']['left_running']}"] if result["final_stop"]["left_running"] else []
    if wrong:
        sys.exit("something went wrong: " + "; ".join(wrong))


if __name__ == "__main__":
    main()
