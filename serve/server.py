"""Launch, health-check and stop vLLM's OpenAI-compatible server for one model folder.

Stdlib only: the app env imports this and runs vLLM from the serve env as a subprocess;
persona.services waits for it and stops it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from persona.paths import home
from persona.services import spawn

DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"


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
    kv_cache_gib: int = 1
    chat_template: Path | None = None  # None: the model folder's own template
    # Eager by default: on CPU torch.compile costs 100+ s at every start (vLLM 0.32
    # fails to reload its compile cache) and buys no measurable decoding speed.
    enforce_eager: bool = True

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
    log of its arguments); vllm_env passes it as VLLM_API_KEY.
    """
    argv = [
        str(Path(env_prefix) / "bin" / "vllm"),
        "serve",
        str(opts.model),
        "--served-model-name", opts.served_name,
        "--host", opts.host,
        "--port", str(opts.port),
        "--dtype", opts.dtype,
        "--max-model-len", str(opts.max_model_len),
        # "auto": default sampling settings and stop ids come from the folder's
        # generation_config.json (eos = <|im_end|> for the chat models here).
        "--generation-config", "auto",
    ]
    if opts.chat_template is not None:
        argv += ["--chat-template", str(opts.chat_template)]
    if opts.enforce_eager:
        argv.append("--enforce-eager")
    return argv


def vllm_cache_root() -> Path:
    """Inside persona's own cache, so compiled kernels do not land in ~/.cache/vllm."""
    return home() / "vllm-cache"


def vllm_env(opts: ServeOptions, env_prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env_bin = str(Path(env_prefix) / "bin")
    env["PATH"] = env_bin + os.pathsep + env.get("PATH", "") if env.get("PATH") else env_bin
    env["VIRTUAL_ENV"] = str(env_prefix)
    env.pop("PYTHONHOME", None)
    env.update(
        {
            "VLLM_API_KEY": opts.api_key,
            "VLLM_CPU_KVCACHE_SPACE": str(opts.kv_cache_gib),
            "VLLM_CACHE_ROOT": str(vllm_cache_root()),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            # Everything is local: never reach for a model hub.
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    return env


def start(opts: ServeOptions, env_prefix: Path, log_path: Path) -> subprocess.Popen:
    """Start the server in its own process group (stop it with persona.services.stop)."""
    vllm_cache_root().mkdir(parents=True, exist_ok=True)
    return spawn(vllm_command(opts, env_prefix), vllm_env(opts, env_prefix), Path(log_path))
