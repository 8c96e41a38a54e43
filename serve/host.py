"""vLLM CPU settings that fit the machine persona runs on: OpenMP threads and KV-cache size.

vLLM's CPU backend binds its worker's OpenMP threads itself. Its automatic binding keeps one
core per worker for the scheduler process, so on a 2-core box the model runs on one core
(measured: benchmarks/serve_bench.py, docs/serving.md). Persona binds every core the process
may use instead, and gives the KV cache a share of the available memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuFit:
    threads_bind: str  # VLLM_CPU_OMP_THREADS_BIND: a core list like "0-1", or "auto"
    reserved_cpus: int | None  # VLLM_CPU_NUM_OF_RESERVED_CPU; None: vLLM's default
    kv_cache_gib: int  # VLLM_CPU_KVCACHE_SPACE


def usable_cpus() -> list[int]:
    """The cores this process may run on (a container's or taskset's limit, not the host's)."""
    return sorted(os.sched_getaffinity(0))


def available_gib() -> float:
    """MemAvailable in GiB; 4 when it cannot be read (a conservative guess)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 4.0


def core_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the syntax VLLM_CPU_OMP_THREADS_BIND takes)."""
    ranges: list[str] = []
    start = prev = None
    for cpu in sorted(cpus):
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:
            prev = cpu
        else:
            ranges.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = cpu
    if start is not None:
        ranges.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(ranges)


def fit(cpus: list[int] | None = None, mem_gib: float | None = None) -> CpuFit:
    """Threads on every usable core; KV cache = 1/8 of available memory, 1 to 4 GiB.

    1 GiB holds about 23,000 tokens of SmolLM2-135M in float32, already 11 full 2048-token
    contexts; bigger models on bigger boxes get more, up to a cap that leaves room for others.
    """
    cpus = usable_cpus() if cpus is None else cpus
    mem_gib = available_gib() if mem_gib is None else mem_gib
    kv = int(min(4, max(1, mem_gib // 8)))
    if not cpus:
        return CpuFit("auto", None, kv)
    # No core held back: on a small box one idle scheduler core costs half the throughput,
    # and the scheduler process mostly sleeps between steps.
    return CpuFit(core_list(cpus), 0, kv)
