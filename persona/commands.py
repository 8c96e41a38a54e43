"""The subcommands. Each is a thin typed function: it resolves the card, then hands the work to
train/, serve/, ui/ or evals/ — inside their own environments, so heavy stacks load only here."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from persona import base_models, envs, services
from persona.card import PersonaCard, load_card
from persona.cli_args import model_argv, takes_model_flags
from persona.errors import PersonaError
from persona.paths import REPO_ROOT, home, run_dir
from persona.run_folder import RunFolder, RunFolderError, check_request, refined_already
from persona.services import (Children, api_key, check_api_exposure, ensure_free, spawn,
                              wait_http)
from persona.train.options import TrainOptions

DEFAULT_CARD = REPO_ROOT / "cards" / "xiaocong.yaml"


class CommandError(PersonaError, RuntimeError):
    """A step failed in a way the user can act on."""


def _run_folder(card: PersonaCard, out: Path | None) -> RunFolder:
    return RunFolder.at(out or run_dir(card.id))


def setup(env: str = "all") -> None:
    """Build the training and serving environments and convert the embedded base model.

    Args:
        env: train, serve, gguf (for `persona export`) or all (train and serve: what `make demo` needs); several comma-separated
    """
    names = [n for part in env.split(",") for n in
             (["train", "serve"] if part.strip() == "all" else [part.strip()])]
    unknown = [n for n in names if n not in envs.ENVS]
    if unknown or not names:
        raise CommandError(f"--env {env!r}: choose from {', '.join(envs.ENVS)} or all "
                           "(several comma-separated)")
    for name in dict.fromkeys(names):
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
    # The training env: general-skill replay asks the base model itself (torch, transformers).
    code = _run_pipeline(card, persona, _run_folder(persona, out), ["--only-data"])
    if code != 0:
        raise CommandError(f"building the dataset of {persona.id} failed (exit {code})")


def _run_pipeline(card: Path, persona: PersonaCard, run: RunFolder, flags: list[str]) -> int:
    """`python -m persona.train.pipeline` on the card's base and run folder, in the training env;
    its exit code."""
    run.check_claimable()  # a folder that is not persona's is refused before anything starts
    base = base_models.resolve(persona.base)
    return envs.run_module("train", "persona.train.pipeline", [
        "--card", str(Path(card).resolve()), "--base-model", str(base), "--out", str(run.root),
        *flags]).returncode


@takes_model_flags(TrainOptions, "training options (unset ones come from the base preset)")
def train(card: Path = DEFAULT_CARD, out: Path | None = None, dataset: Path | None = None,
          replay_ratio: float | None = None, corrections: Path | None = None,
          refine: bool = False, force: bool = False, **options: Any) -> Path:
    """Fine-tune the card's base with XTuner (QLoRA by default), convert and merge; reuse a
    finished run, resume an interrupted one.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        dataset: conversation-format JSON to train on instead of the card's dataset
        replay_ratio: general-skill replay samples (the base's own answers) per other sample
            (default: 0.15; 0 turns replay off)
        corrections: conversation-format JSON mixed into the card's dataset (`persona feedback export` writes one)
        refine: train the finished run a short pass on --corrections from its adapter (minutes) instead of retraining it from the base
        force: retrain even when a finished run exists
        options: TrainOptions fields (method, epochs, max_steps, lr, lora_r, ...); None = unset
    """
    from persona.train.dataset_file import DatasetError, load_samples
    from persona.train.options import resolve_options

    persona = load_card(card)
    # Everything is checked before anything is written or started.
    try:
        resolve_options(persona.base, options)
        samples = load_samples(dataset) if dataset else None
        fixes = load_samples(corrections) if corrections else None
    except (ValueError, DatasetError) as error:
        raise CommandError(str(error)) from None
    run = _run_folder(persona, out)
    if refine:
        if fixes is None or force or dataset:
            raise CommandError("--refine trains a finished run on --corrections alone: give "
                               "--corrections FILE, without --force or --dataset")
        if refined_already(run, persona, options, fixes):
            print(f"persona: {persona.id} is already refined with these corrections: {run.root}")
            return run.root
    elif run.finished() and not force:
        check_request(run, persona, options, samples, replay_ratio, fixes)
        print(f"persona: {persona.id} is already trained: {run.root} (pass --force to retrain)")
        return run.root
    args = model_argv(TrainOptions, options)
    if dataset:
        args += ["--dataset", str(Path(dataset).resolve())]
    if replay_ratio is not None:
        args += ["--replay-ratio", str(replay_ratio)]
    if corrections:
        args += ["--corrections", str(Path(corrections).resolve())]
    if refine:
        args += ["--refine"]
    if force:
        args += ["--force"]
    code = _run_pipeline(card, persona, run, args)
    if code != 0 or not run.finished():
        raise CommandError(f"training {persona.id} failed (exit {code}); see the "
                           f"output above. The same command resumes from the last checkpoint; "
                           f"a finished model in {run.root} is kept until a retrain starts "
                           "replacing it, and the run is finished again once that one succeeds")
    return run.root


def merge(card: Path = DEFAULT_CARD, out: Path | None = None) -> None:
    """Convert the last checkpoint to a Hugging Face adapter and merge it into the base.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
    """
    persona = load_card(card)
    run = _run_folder(persona, out)
    code = _run_pipeline(card, persona, run, ["--only-merge"])
    if code != 0 or not run.finished():
        raise CommandError(f"merging {persona.id} failed (exit {code}); see above")


def _start_api(persona: PersonaCard | None, model: Path, host: str, port: int, key: str,
               children: Children, compile: bool = False, tensor_parallel: int = 1,
               adapters: tuple[tuple[str, Path], ...] = (), chat_template: Path | None = None,
               served_name: str | None = None, max_lora_rank: int = 16,
               adapter_root: Path | None = None, base: str | None = None) -> str:
    """vLLM on `model`, ready; persona None: a live server of `base` with no persona yet."""
    from persona.serve.server import ServeOptions, start

    remote_code = (base_models.trusts_remote_code(persona) if persona is not None
                   else base_models.base_trusts_remote_code(str(base)))
    try:
        options = ServeOptions(model=model, served_name=served_name or persona.id, api_key=key,
                               host=host, port=port, enforce_eager=not compile,
                               device=envs.device(), tensor_parallel_size=tensor_parallel,
                               lora_modules=adapters, chat_template=chat_template,
                               max_lora_rank=max_lora_rank, adapter_root=adapter_root,
                               trust_remote_code=remote_code)
    except ValueError as error:
        raise CommandError(f"cannot serve {served_name or persona.id}: {error}") from None
    ensure_free(host, port, "--port / API_PORT")
    names = [name for name, _ in adapters]
    log = home() / "logs" / f"vllm-{'+'.join(names) or options.served_name}-{port}.log"
    what = (f"{', '.join(names)} as LoRA adapters on {Path(str(model)).name}" if names
            else options.served_name)
    print(f"persona: starting vLLM for {what} on http://{host}:{port}/v1 (log: {log})", flush=True)
    # the serve environment is held while vLLM runs from it: no rebuild deletes it meanwhile
    prefix = children.hold(envs.using("serve", f"vLLM on {host}:{port}"))
    process = children.add(start(options, prefix, log))
    seconds = wait_http(options.health_url, process, log, timeout=900, what="vLLM")
    print(f"persona: vLLM ready in {seconds:.0f} s", flush=True)
    return options.base_url


def _check_ui_login(host: str, allow_no_login: bool) -> None:
    """Before anything starts: no chat open to other machines without a password."""
    from persona.ui.login import check_exposure

    check_exposure(host, os.environ.get("PERSONA_UI_PASSWORD"), allow_no_login)


def _start_ui(card: Path, persona: PersonaCard, api_url: str, key: str, host: str, port: int,
              children: Children, allow_no_login: bool = False) -> str:
    from persona.ui.launch import ui_command

    ensure_free(host, port, "--ui-port / UI_PORT")
    log = home() / "logs" / f"ui-{persona.id}-{port}.log"
    launch = ui_command(base_url=api_url, model=persona.id, api_key=key, card=Path(card).resolve(),
                        host=host, port=port, password=os.environ.get("PERSONA_UI_PASSWORD"),
                        user=os.environ.get("PERSONA_UI_USER"), allow_no_login=allow_no_login)
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


def _hold_run(run: RunFolder, persona: PersonaCard, job: str, children: Children) -> Path:
    """Hold the finished run shared until the children are stopped: servers and evals of it run
    together, a retraining is refused while they do (and they while it does), naming the
    holder. Checked again under the lock; its merged model."""
    run.claim(persona.id)  # a run from before the marker is adopted
    children.hold(run.lock(job, shared=True))
    if not run.finished():
        raise RunFolderError(f"{run.root} is not a finished run (a retraining removed its "
                             "manifest); train it again, or serve another --out")
    check_request(run, persona)
    return run.merged


def _trained_run(card: Path, out: Path | None) -> RunFolder:
    """The card's run: a finished run of this very card is served as it is (one trained from
    another card is refused, as `train` refuses it), else trained."""
    persona = load_card(card)
    run = _run_folder(persona, out)
    if run.finished():
        check_request(run, persona)
    else:
        train(card, out=out)
    return run


def serve(card: Path = DEFAULT_CARD, out: Path | None = None, port: int = 8000,
          host: str = "127.0.0.1", compile: bool = False, tensor_parallel: int = 1,
          adapters: str | None = None, base: str | None = None) -> None:
    """Serve the card's merged model with vLLM's OpenAI-compatible API (trains it first if needed).

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        port: API port
        host: bind address (127.0.0.1 keeps it on this machine; any other needs PERSONA_API_KEY)
        compile: let vLLM compile the model graph (start-up ~80 s instead of ~25 s on CPU)
        tensor_parallel: GPUs to split the model over (CUDA hosts only)
        adapters: comma-separated cards to serve together on their shared base, each as a LoRA adapter under its id (replaces --card); `persona add/remove` change the set while it runs
        base: serve this base (a preset, folder or hub id) with no persona yet, for `persona add` (replaces --card)
    """
    check_api_exposure(host)  # before anything is trained or started
    if tensor_parallel > 1 and envs.device() != "cuda":
        raise CommandError(f"--tensor-parallel {tensor_parallel} needs CUDA GPUs; this host serves "
                           f"on CPU (PERSONA_DEVICE={os.environ.get('PERSONA_DEVICE', 'auto')})")
    if adapters or base:
        from persona.commands_live import serve_live

        cards = [Path(c.strip()) for c in (adapters or "").split(",") if c.strip()]
        return serve_live(cards, base, port, host, compile, tensor_parallel)
    persona = load_card(card)
    run = _trained_run(card, out)
    key = api_key()
    with Children() as children:
        model = _hold_run(run, persona, "serve", children)
        url = _start_api(persona, model, host, port, key, children, compile, tensor_parallel)
        _announce(persona, url, key, None)
        _wait_forever(children)


def ui(card: Path = DEFAULT_CARD, api_url: str = "http://127.0.0.1:8000/v1", port: int = 8001,
       host: str = "127.0.0.1", allow_no_login: bool = False) -> None:
    """Start the Chainlit chat on a running persona API (key from PERSONA_API_KEY).

    Args:
        card: persona card YAML
        api_url: the OpenAI-compatible base URL
        port: UI port
        host: bind address
        allow_no_login: serve a non-loopback host without PERSONA_UI_PASSWORD
    """
    persona = load_card(card)
    _check_ui_login(host, allow_no_login)
    with Children() as children:
        url = _start_ui(card, persona, api_url, os.environ.get("PERSONA_API_KEY", "none"), host,
                        port, children, allow_no_login)
        print(f"persona: chat with {persona.name.en} at {url}", flush=True)
        _wait_forever(children)


def _start_base_api(persona: PersonaCard, host: str, port: int, key: str,
                    children: Children) -> tuple[str, str]:
    """The card's untuned base as shipped: its own chat template, served under its own name."""
    name = Path(persona.base).name.lower()
    url = _start_api(persona, Path(base_models.resolve(persona.base)), host, port, key, children,
                     served_name=name)
    return url, name


def _run_evals(card: Path, base_url: str, model: str, key: str, report_dir: Path,
               reference: Path | None = None, run: RunFolder | None = None) -> int:
    env = dict(os.environ, PERSONA_BASE_URL=base_url, PERSONA_MODEL=model, PERSONA_API_KEY=key,
               PERSONA_CARD=str(Path(card).resolve()), PERSONA_EVAL_REPORT=str(report_dir.resolve()))
    if run is not None:  # the evals ask the held-out questions written with this run's dataset
        env["PERSONA_RUN"] = str(run.root)
    if reference is not None:
        env["PERSONA_REFERENCE_REPORT"] = str(reference.resolve())
    code = services.run([sys.executable, "-m", "pytest", str(REPO_ROOT / "evals"), "-q",
                         "--tb=short", "-p", "no:cacheprovider"], env=env, cwd=REPO_ROOT)
    print(f"persona: report in {report_dir.resolve() / 'report.md'}", flush=True)
    return code


def eval(card: Path = DEFAULT_CARD, out: Path | None = None, base_url: str | None = None,
         model: str | None = None, report_dir: Path = Path("eval-report"), port: int = 8010,
         compare_base: bool = False) -> int:
    """Run `pytest evals/` against a persona endpoint; starts the card's server when none is given.

    Args:
        card: persona card YAML
        out: run folder to serve when no base_url is given (default: the card's)
        base_url: an OpenAI-compatible base URL (key from PERSONA_API_KEY)
        model: served model name (default: the card's id)
        report_dir: where report.json and report.md go
        port: port for the server started when no base_url is given
        compare_base: also run the suite against the untuned base (served on port+1, report in report_dir/base) and chart base vs persona
    """
    persona = load_card(card)
    key = os.environ.get("PERSONA_API_KEY", "none")
    reference = run = None
    with Children() as children:
        if base_url is None:
            key = api_key()
            run = _trained_run(card, out)
            model_path = _hold_run(run, persona, "eval", children)
            base_url = _start_api(persona, model_path, "127.0.0.1", port, key, children)
        if compare_base:
            base_key = api_key()
            url, name = _start_base_api(persona, "127.0.0.1", port + 1, base_key, children)
            print(f"persona: the suite against the untuned base {name} (identity cases fail there)",
                  flush=True)
            # the same questions as the persona's run, so the two reports compare
            _run_evals(card, url, name, base_key, report_dir / "base", run=run)
            reference = report_dir / "base" / "report.json"
        code = _run_evals(card, base_url, model or persona.id, key, report_dir, reference, run)
    return code


def banner(headline: str, api_line: str, key: str, extra: Sequence[str] = ()) -> None:
    """The box a server prints once it is up; a generated key is printed here, once, and
    nowhere else (not in the log)."""
    print("\n" + "=" * 64)
    print(f"  {headline}")
    print(f"  {api_line}")
    if "PERSONA_API_KEY" not in os.environ:
        print(f"  key   {key}   (generated; set PERSONA_API_KEY to choose one)")
    for line in extra:
        print(f"  {line}")
    print("  Ctrl-C stops everything")
    print("=" * 64 + "\n", flush=True)


def _announce(persona: PersonaCard, api_url: str, key: str, ui_url: str | None) -> None:
    extra = []
    if ui_url:
        extra.append(f"chat  {ui_url}")
        if os.environ.get("PERSONA_UI_PASSWORD"):
            from persona.ui.settings import login_user

            extra.append(f"login {login_user(os.environ)}   (password: PERSONA_UI_PASSWORD)")
    banner(f"{persona.name.en} ({persona.name.zh}) is up", f"API   {api_url}   model: {persona.id}",
           key, extra)


def up(card: Path = DEFAULT_CARD, out: Path | None = None, api_port: int = 8000,
       ui_port: int = 8001, host: str = "127.0.0.1", allow_no_login: bool = False) -> None:
    """Train the card if needed, serve it with vLLM and open the Chainlit chat on it.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        api_port: vLLM API port
        ui_port: Chainlit port
        host: bind address for both (any but loopback needs PERSONA_API_KEY)
        allow_no_login: serve the chat on a non-loopback host without PERSONA_UI_PASSWORD
    """
    persona = load_card(card)
    _check_ui_login(host, allow_no_login)
    check_api_exposure(host)
    run = _trained_run(card, out)
    key = api_key()
    with Children() as children:
        model = _hold_run(run, persona, "serve", children)
        api_url = _start_api(persona, model, host, api_port, key, children)
        ui_url = _start_ui(card, persona, api_url, key, host, ui_port, children, allow_no_login)
        _announce(persona, api_url, key, ui_url)
        _wait_forever(children)
