"""The subcommands. Each is a thin typed function: it resolves the card, then hands the work to
train/, serve/, ui/ or evals/ — inside their own environments, so heavy stacks load only here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from persona import base_models, envs
from persona.card import PersonaCard, load_card
from persona.paths import REPO_ROOT, home, run_dir
from persona.services import Children, api_key, ensure_free, spawn, wait_http

DEFAULT_CARD = REPO_ROOT / "cards" / "xiaocong.yaml"


class CommandError(RuntimeError):
    """A step failed in a way the user can act on."""


def _run_folder(card: PersonaCard, out: Path | None) -> Path:
    return (out or run_dir(card.id)).expanduser().resolve()


def _finished(run: Path) -> bool:
    return (run / "manifest.json").is_file() and (run / "merged" / "config.json").is_file()


def setup(env: str = "all") -> None:
    """Build the training and serving environments and convert the embedded base model.

    Args:
        env: train, serve or all
    """
    names = ["train", "serve"] if env == "all" else [env]
    for name in names:
        envs.ensure(name)
    if "serve" in names:
        base_models.resolve("smollm2-135m-instruct")
    print(f"persona: ready (cache: {home()})")


def data(card: Path = DEFAULT_CARD, out: Path | None = None) -> None:
    """Build the self-cognition dataset of a card and print its statistics.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
    """
    persona = load_card(card)
    from train.dataset import write_dataset

    folder = _run_folder(persona, out) / "data"
    write_dataset(persona, folder)
    print(f"persona: dataset written to {folder}")


def train(card: Path = DEFAULT_CARD, out: Path | None = None, epochs: int | None = None,
          max_steps: int | None = None, force: bool = False) -> Path:
    """Fine-tune the card's base with XTuner QLoRA, convert and merge; reuse a finished run.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        epochs: training epochs (default: the preset's)
        max_steps: stop after this many optimizer steps (a quick smoke run)
        force: retrain even when a finished run exists
    """
    persona = load_card(card)
    run = _run_folder(persona, out)
    if _finished(run) and not force:
        print(f"persona: {persona.id} is already trained: {run} (pass --force to retrain)")
        return run
    base = base_models.resolve(persona.base)
    args = ["--card", str(Path(card).resolve()), "--base-model", str(base), "--out", str(run)]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if max_steps is not None:
        args += ["--max-steps", str(max_steps)]
    if force:
        args += ["--force"]
    result = envs.run_module("train", "train.pipeline", args)
    if result.returncode != 0 or not _finished(run):
        raise CommandError(f"training {persona.id} failed (exit {result.returncode}); "
                           f"earlier artifacts in {run} are untouched; see the output above")
    return run


def merge(card: Path = DEFAULT_CARD, out: Path | None = None) -> None:
    """Convert the last checkpoint to a Hugging Face adapter and merge it into the base.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
    """
    persona = load_card(card)
    run = _run_folder(persona, out)
    base = base_models.resolve(persona.base)
    result = envs.run_module("train", "train.pipeline", [
        "--card", str(Path(card).resolve()), "--base-model", str(base), "--out", str(run),
        "--only-merge"])
    if result.returncode != 0 or not _finished(run):
        raise CommandError(f"merging {persona.id} failed (exit {result.returncode}); see above")


def _start_api(persona: PersonaCard, model: Path, host: str, port: int, key: str,
               children: Children, compile: bool = False, tensor_parallel: int = 1,
               adapters: tuple[tuple[str, Path], ...] = (), chat_template: Path | None = None,
               served_name: str | None = None, max_lora_rank: int = 16) -> str:
    from serve.server import ServeOptions, start

    try:
        options = ServeOptions(model=model, served_name=served_name or persona.id, api_key=key,
                               host=host, port=port, enforce_eager=not compile,
                               device=envs.device(), tensor_parallel_size=tensor_parallel,
                               lora_modules=adapters, chat_template=chat_template,
                               max_lora_rank=max_lora_rank)
    except ValueError as error:
        raise CommandError(f"cannot serve {persona.id}: {error}") from None
    ensure_free(host, port, "--port / API_PORT")
    log = home() / "logs" / f"vllm-{persona.id}-{port}.log"
    print(f"persona: starting vLLM for {persona.id} on http://{host}:{port}/v1 (log: {log})", flush=True)
    process = children.add(start(options, envs.ensure("serve"), log))
    seconds = wait_http(options.health_url, process, log, timeout=900, what="vLLM")
    print(f"persona: vLLM ready in {seconds:.0f} s", flush=True)
    return options.base_url


def _start_ui(card: Path, persona: PersonaCard, api_url: str, key: str, host: str, port: int,
              children: Children) -> str:
    from ui.launch import ui_command

    ensure_free(host, port, "--ui-port / UI_PORT")
    log = home() / "logs" / f"ui-{persona.id}-{port}.log"
    launch = ui_command(base_url=api_url, model=persona.id, api_key=key, card=Path(card).resolve(),
                        host=host, port=port)
    process = children.add(spawn(launch.argv, launch.env, log, cwd=launch.cwd))
    wait_http(launch.url, process, log, timeout=120, what="Chainlit")
    return launch.url


def _wait_forever(children: Children) -> None:
    while True:
        for process in children.processes:
            if process.poll() is not None:
                raise CommandError(f"a service exited with code {process.returncode}: "
                                   f"{' '.join(map(str, process.args[:3]))}")
        time.sleep(1)


def _trained_model(card: Path, out: Path | None) -> Path:
    return train(card, out=out) / "merged"


def serve(card: Path = DEFAULT_CARD, out: Path | None = None, port: int = 8000,
          host: str = "127.0.0.1", compile: bool = False, tensor_parallel: int = 1,
          adapters: str | None = None) -> None:
    """Serve the card's merged model with vLLM's OpenAI-compatible API (trains it first if needed).

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        port: API port
        host: bind address (127.0.0.1 keeps it on this machine)
        compile: let vLLM compile the model graph (start-up ~3 min instead of ~30 s on CPU)
        tensor_parallel: GPUs to split the model over (CUDA hosts only)
        adapters: comma-separated cards to serve together on their shared base, each as a LoRA adapter under its id (replaces --card)
    """
    if tensor_parallel > 1 and envs.device() != "cuda":
        raise CommandError(f"--tensor-parallel {tensor_parallel} needs CUDA GPUs; this host serves "
                           f"on CPU (PERSONA_DEVICE={os.environ.get('PERSONA_DEVICE', 'auto')})")
    if adapters:
        return _serve_adapters([Path(c.strip()) for c in adapters.split(",") if c.strip()],
                               port, host, compile, tensor_parallel)
    persona = load_card(card)
    model = _trained_model(card, out)
    key = api_key()
    with Children() as children:
        url = _start_api(persona, model, host, port, key, children, compile, tensor_parallel)
        _announce(persona, url, key, None)
        _wait_forever(children)


def _serve_adapters(cards: list[Path], port: int, host: str, compile: bool,
                    tensor_parallel: int) -> None:
    """One vLLM server: the shared base once, each card's LoRA adapter routed by model name."""
    from serve.adapters import AdapterError, plan

    personas = [load_card(card) for card in cards]
    runs = [train(card) for card in cards]
    try:
        served = plan(personas, runs, base_models.resolve(personas[0].base))
    except AdapterError as error:
        raise CommandError(str(error)) from None
    key = api_key()
    with Children() as children:
        url = _start_api(personas[0], served.base, host, port, key, children, compile,
                         tensor_parallel, served.adapters, served.chat_template, served.base_name,
                         served.max_lora_rank)
        _announce(personas[0], url, key, None, models=[p.id for p in personas])
        _wait_forever(children)


def ui(card: Path = DEFAULT_CARD, api_url: str = "http://127.0.0.1:8000/v1", port: int = 8001,
       host: str = "127.0.0.1") -> None:
    """Start the Chainlit chat on a running persona API (key from PERSONA_API_KEY).

    Args:
        card: persona card YAML
        api_url: the OpenAI-compatible base URL
        port: UI port
        host: bind address
    """
    persona = load_card(card)
    with Children() as children:
        url = _start_ui(card, persona, api_url, os.environ.get("PERSONA_API_KEY", "none"), host,
                        port, children)
        print(f"persona: chat with {persona.name.en} at {url}", flush=True)
        _wait_forever(children)


def eval(card: Path = DEFAULT_CARD, out: Path | None = None, base_url: str | None = None,
         model: str | None = None, report_dir: Path = Path("eval-report"), port: int = 8010) -> int:
    """Run `pytest evals/` against a persona endpoint; starts the card's server when none is given.

    Args:
        card: persona card YAML
        out: run folder to serve when no base_url is given (default: the card's)
        base_url: an OpenAI-compatible base URL (key from PERSONA_API_KEY)
        model: served model name (default: the card's id)
        report_dir: where report.json and report.md go
        port: port for the server started when no base_url is given
    """
    persona = load_card(card)
    key = os.environ.get("PERSONA_API_KEY", "none")
    with Children() as children:
        if base_url is None:
            key = api_key()
            base_url = _start_api(persona, _trained_model(card, out), "127.0.0.1", port, key,
                                  children)
        env = dict(os.environ, PERSONA_BASE_URL=base_url, PERSONA_MODEL=model or persona.id,
                   PERSONA_API_KEY=key, PERSONA_CARD=str(Path(card).resolve()),
                   PERSONA_EVAL_REPORT=str(report_dir.resolve()))
        result = subprocess.run([sys.executable, "-m", "pytest", str(REPO_ROOT / "evals"), "-q",
                                 "-p", "no:cacheprovider"], env=env, cwd=REPO_ROOT)
    print(f"persona: report in {report_dir.resolve() / 'report.md'}")
    return result.returncode


def _announce(persona: PersonaCard, api_url: str, key: str, ui_url: str | None,
              models: list[str] | None = None) -> None:
    """The URLs; a generated key is printed here, once, and nowhere else (not in the log)."""
    print("\n" + "=" * 64)
    print(f"  {persona.name.en} ({persona.name.zh}) is up" if not models else
          f"  {len(models)} personas on one base are up")
    print(f"  API   {api_url}   model: {', '.join(models or [persona.id])}")
    if "PERSONA_API_KEY" not in os.environ:
        print(f"  key   {key}   (generated; set PERSONA_API_KEY to choose one)")
    if ui_url:
        print(f"  chat  {ui_url}")
    print("  Ctrl-C stops everything")
    print("=" * 64 + "\n", flush=True)


def up(card: Path = DEFAULT_CARD, out: Path | None = None, api_port: int = 8000,
       ui_port: int = 8001, host: str = "127.0.0.1") -> None:
    """Train the card if needed, serve it with vLLM and open the Chainlit chat on it.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        api_port: vLLM API port
        ui_port: Chainlit port
        host: bind address for both
    """
    persona = load_card(card)
    model = _trained_model(card, out)
    key = api_key()
    with Children() as children:
        api_url = _start_api(persona, model, host, api_port, key, children)
        ui_url = _start_ui(card, persona, api_url, key, host, ui_port, children)
        _announce(persona, api_url, key, ui_url)
        _wait_forever(children)
