"""Card -> dataset -> `xtuner train` -> `xtuner convert pth_to_hf` -> `xtuner convert merge`
-> a merged safetensors model whose chat template matches training, and a manifest.

Runs inside the training env (the persona CLI does this for you):
  python -m persona.train.pipeline --card CARD --base-model DIR --out RUN_DIR [--method qlora|lora|full]
      [--epochs N] [--max-steps N] [--lr LR] [--lora-r R] [--max-length N] [--no-pack]
      [--dataset FILE] [--force] ...
  python -m persona.train.pipeline --card CARD --base-model DIR --out RUN_DIR --only-merge

RUN_DIR/
  data/            train.json, heldout.json, stats.json
  xtuner_config.py the rendered XTuner config
  work/            XTuner's work dir: iter_N.pth (every save_steps, 2 kept), last_checkpoint,
                   inputs.json (what the checkpoints were trained on); train/convert/merge logs
  adapter/         the LoRA adapter (pth_to_hf); absent for --method full
  merged/          base + adapter (safetensors), training chat template, eos = <|im_end|>
  loss_curve.png   the training loss by step
  probe.json       a few greedy answers of the merged model
  manifest.json    card, base, versions, hyperparameters, dataset stats, timings, loss; written last

An interrupted run resumes from its last checkpoint when rerun with the same config and data.
A finished run is never retrained without --force, and a request that differs from it is
refused. merged/ and manifest.json are replaced only once a new merge has succeeded. XTuner's
commands exit 0 even when their child fails, so each stage is judged by the files it must leave.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from persona.card import CardError, PersonaCard, load_card
from persona.identity.heldout import HELDOUT_QUESTIONS
from persona.services import tail
from persona.train import run_state
from persona.train.dataset import dataset_stats, write_dataset
from persona.train.dataset_file import DatasetError, load_samples
from persona.train.xtuner_config import METHODS, TrainOptions, render_config

# Replay samples per other sample; chosen with the recipes compared in docs/training.md (leakage).
DEFAULT_REPLAY_RATIO = 0.15
ITER_LINE = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\].*?time:\s*([\d.]+).*?loss:\s*([\d.]+)")
LOG_TIME = re.compile(r"^\d\d/\d\d \d\d:\d\d:\d\d")
CONFIG_LINE = re.compile(r'^(method|prompt_template) = (?:PROMPT_TEMPLATE\.)?"?(\w+)"?', re.M)


class PipelineError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"train: {message}", flush=True)


class Stopwatch:
    """Seconds per stage, in order."""

    def __init__(self):
        self.started = self.lap_started = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.lap_started, 1)
        self.lap_started = now
        say(f"{name} done in {self.laps[name]:.1f} s")

    def total(self) -> float:
        return round(time.monotonic() - self.started, 1)


def child_env(run: Path) -> dict[str, str]:
    """XTuner re-launches its scripts with a bare `python`: this env's bin goes first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The repo root, so the generated config can import persona.train.* (never a bare `train`:
    # under `xtuner train` the folder of xtuner/tools/train.py would shadow it).
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen, not when a pipe buffer fills
    env["HF_DATASETS_CACHE"] = str(run / "work" / "datasets-cache")
    # Resuming reads our own checkpoints (optimizer and mmengine's log state, not just tensors),
    # which torch >= 2.6's weights-only default refuses in xtuner's and mmengine's torch.load.
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    return env


def busy_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes right now (we have not started yet): /proc/stat
    sampled over `seconds`. The load average is no use here: it still counts the job that
    finished a minute ago, e.g. the previous test or benchmark step."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:  # not Linux: fall back to the 1-minute load average
        return os.getloadavg()[0]
    if total1 == total0:
        return 0.0
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def share_busy_cpu(env: dict[str, str]) -> None:
    """On a machine already busy, make torch's OpenMP threads sleep instead of spin while waiting.

    Measured with two trainings on the same 2 cores: each went from 1.45 to ~40 s/step, because
    libgomp's waiting threads spin through the other's time slices; with passive waiting two
    jobs take about twice as long instead. Alone, passive waiting costs 15-40%, so it is only
    chosen when other work keeps at least half a core busy (or when the caller sets
    OMP_WAIT_POLICY).
    """
    if "OMP_WAIT_POLICY" in env:
        return
    busy = busy_cores()
    if busy >= 0.5:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        say(f"note: other processes keep {busy:.1f} of {os.cpu_count()} cores busy, so training "
            "waits passively and will be slower than alone")


def xtuner_command() -> list[str]:
    """XTuner's console script beside this interpreter, or its entry point through it (where the
    stack was installed with `pip --target`, which leaves the script elsewhere)."""
    script = Path(sys.executable).parent / "xtuner"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from xtuner.entry_point import cli; sys.exit(cli())"]


def run_logged(command: list[str], log: Path, env: dict[str, str], on_line=None) -> None:
    """Run a command, appending its output to `log`; `on_line` sees each line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=env, text=True, errors="replace", bufsize=1)
        for line in process.stdout:
            out.write(line)
            if on_line:
                on_line(line.rstrip("\n"))
        process.wait()
    if process.returncode != 0:
        raise PipelineError(f"{log.stem} exited {process.returncode}; see {log}")


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class TrainWatcher:
    """Turns XTuner's log into short progress lines (step, loss, speed, ETA)."""

    def __init__(self):
        self.seconds: list[float] = []
        self.in_sample = False
        self.total: int | None = None  # iterations of the whole run, once a step is logged
        self.crashed = False  # XTuner exits 0 even when its training script raised

    def __call__(self, line: str) -> None:
        match = ITER_LINE.search(line)
        if match:
            step, total, seconds, loss = match.groups()
            self.total = int(total)
            self.seconds.append(float(seconds))
            recent = self.seconds[-5:]  # the last few intervals: speed drifts with the machine's load
            eta = (int(total) - int(step)) * sum(recent) / len(recent)
            say(f"step {step}/{total}  loss {float(loss):.3f}  {float(seconds):.2f} s/step  "
                f"ETA {duration(eta)}")
        elif "Advance dataloader" in line or "resumed epoch" in line:
            say(line.split(" - ")[-1].strip())
        elif "Sample output:" in line:  # EvaluateChatHook
            self.in_sample = True
            say("sample answer:")
        elif self.in_sample and LOG_TIME.match(line):
            self.in_sample = False
        elif self.in_sample and line.strip():
            print(f"       | {line}", flush=True)
        elif "Traceback" in line or "Error:" in line:
            self.crashed = self.crashed or line.startswith("Traceback (most recent call last)")
            print(f"       ! {line}", flush=True)


def loss_curve(log: Path) -> list[dict]:
    """Every logged step of train.log; a resumed run's steps replace the interrupted run's."""
    points: dict[int, dict] = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        match = ITER_LINE.search(line)
        if match:
            step, _, seconds, loss = match.groups()
            points[int(step)] = {"step": int(step), "loss": float(loss), "s_per_step": float(seconds)}
    return [points[step] for step in sorted(points)]


def plot_loss(run: Path, card: PersonaCard, curve: list[dict]) -> Path | None:
    if not curve:
        return None
    from persona.plots import line_chart

    return line_chart(run / "loss_curve.png", {"training loss": [(p["step"], p["loss"]) for p in curve]},
                      title=f"{card.id}: training loss", xlabel="optimizer step", ylabel="loss")


def last_checkpoint(work: Path) -> Path | None:
    pointer = work / "last_checkpoint"
    if pointer.exists() and Path(pointer.read_text().strip()).exists():
        return Path(pointer.read_text().strip())
    found = sorted(work.glob("iter_*.pth"), key=lambda path: int(re.findall(r"\d+", path.name)[-1]))
    return found[-1] if found else None


def final_checkpoint(work: Path) -> Path:
    checkpoint = last_checkpoint(work)
    if checkpoint is None:
        raise PipelineError(f"XTuner wrote no checkpoint in {work}; its output ends with:\n"
                            f"{tail(work / 'train.log')}")
    return checkpoint


def sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def replay_turns(card: PersonaCard, base: str, ratio: float) -> list[dict]:
    """The base's own answers to the bundled general prompts, usable ones rewritten to the persona."""
    if ratio <= 0:
        return []
    from persona.train import replay
    from persona.train.general_prompts import split_prompts

    prompts, _ = split_prompts()
    answers = replay.base_answers(base, prompts, log=say)
    turns = replay.replay_turns(card, base, answers)
    say(f"replay: {len(turns)} of {len(answers)} base answers usable (the rest looped, did not "
        "finish or got a clear-cut question wrong)")
    return turns


def build_data(card: PersonaCard, run: Path, base: str, args: argparse.Namespace, seed: int) -> dict:
    """data/: the card's self-cognition samples plus general-skill replay; returns the stats."""
    turns = replay_turns(card, base, args.replay_ratio)
    say(f"building the dataset of {card.id} ({card.name.en} / {card.name.zh})")
    stats = write_dataset(card, run / "data", repeats=args.repeats, plain_repeats=args.plain_repeats,
                          seed=seed, replay=turns, replay_ratio=args.replay_ratio)
    stats["replay_ratio"] = args.replay_ratio
    say(f"{stats['samples']} samples ({stats['replay_samples']} replay), {stats['turns']} turns "
        f"(zh {stats['turns_by_lang']['zh']}, en {stats['turns_by_lang']['en']}), "
        f"{stats['heldout_questions']} held-out questions")
    return stats


def prepare(card: PersonaCard, run: Path, base: str, options: TrainOptions,
            args: argparse.Namespace, samples: list | None) -> dict:
    """Write data/ and xtuner_config.py; return the dataset stats."""
    data = run / "data"
    if samples is None:
        stats = build_data(card, run, base, args, options.seed)
    else:
        say(f"training on {args.dataset} instead of the card's dataset")
        heldout = HELDOUT_QUESTIONS
        stats = {**dataset_stats(samples, heldout), "source": str(args.dataset)}
        data.mkdir(parents=True, exist_ok=True)
        for name, content in (("train.json", samples), ("heldout.json", heldout), ("stats.json", stats)):
            (data / name).write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n",
                                     encoding="utf-8")
        say(f"{stats['samples']} samples, {stats['turns']} turns (zh {stats['turns_by_lang']['zh']}, "
            f"en {stats['turns_by_lang']['en']}), {stats['heldout_questions']} held-out questions")
    heldout = json.loads((data / "heldout.json").read_text(encoding="utf-8"))
    # EvaluateChatHook asks one held-out "who are you" per language before and after training.
    probes = [next(q["question"] for q in heldout if q["lang"] == lang and q["kind"] == "who")
              for lang in ("zh", "en")]
    config = render_config(card.id, base, data / "train.json", options, probes)
    (run / "xtuner_config.py").write_text(config, encoding="utf-8")
    return stats


def resumable(run: Path) -> Path | None:
    """The checkpoint to resume from: one exists and was trained on this very config and data."""
    work = run / "work"
    checkpoint = last_checkpoint(work) if work.is_dir() else None
    inputs = work / "inputs.json"
    if checkpoint is None or not inputs.is_file():
        return None
    recorded = json.loads(inputs.read_text()).get("sha256")
    return checkpoint if recorded == sha256(run / "xtuner_config.py", run / "data" / "train.json") else None


def train(run: Path, options: TrainOptions, env: dict[str, str],
          xtuner: list[str]) -> tuple[Path, str | None]:
    work = run / "work"
    resume = resumable(run)
    command = [*xtuner, "train", str(run / "xtuner_config.py"), "--work-dir", str(work)]
    if resume:
        say(f"resuming from {resume.name} (an earlier run of the same config and data stopped)")
        command += ["--resume", str(resume)]
    else:
        if work.is_dir() and last_checkpoint(work):
            say("the checkpoints in work/ were trained on another config or data: starting over")
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        (work / "inputs.json").write_text(json.dumps(
            {"sha256": sha256(run / "xtuner_config.py", run / "data" / "train.json")}) + "\n")
    length = f"{options.max_steps} steps" if options.max_steps else f"{options.epochs} epoch(s)"
    lora = "" if options.method == "full" else f", LoRA r={options.lora_r} alpha={options.lora_alpha}"
    say(f"xtuner train: {options.method}, {length}, lr {options.lr}{lora}, max_length "
        f"{options.max_length}, template {options.prompt_template}, a checkpoint every "
        f"{options.save_steps} steps (log: {work / 'train.log'})")
    watcher = TrainWatcher()
    run_logged(command, work / "train.log", env, watcher)
    checkpoint = final_checkpoint(work)
    done = int(re.findall(r"\d+", checkpoint.name)[-1])
    if watcher.crashed or (watcher.total and done != watcher.total):
        raise PipelineError(f"xtuner train stopped at {checkpoint.name} of {watcher.total or '?'} "
                            f"steps; its output ends with:\n{tail(work / 'train.log')}")
    return checkpoint, resume.name if resume else None


def convert(run: Path, checkpoint: Path, method: str, env: dict[str, str],
            xtuner: list[str]) -> Path:
    """pth_to_hf: the LoRA adapter into adapter/, or (full) the whole model into merged.partial/."""
    target = run / ("merged.partial" if method == "full" else "adapter")
    if target.exists():
        shutil.rmtree(target)
    if method == "full" and (run / "adapter").exists():
        shutil.rmtree(run / "adapter")  # an earlier LoRA run's; this run has none
    say(f"xtuner convert pth_to_hf {checkpoint.name} -> {target}")
    log = run / "work" / "convert.log"
    run_logged([*xtuner, "convert", "pth_to_hf", str(run / "xtuner_config.py"), str(checkpoint),
                str(target), "--safe-serialization"], log, env)
    expected = "config.json" if method == "full" else "adapter_config.json"
    if not (target / expected).exists():
        raise PipelineError(f"pth_to_hf left no {expected} in {target}:\n{tail(log)}")
    return target


def merge(run: Path, base: str, adapter: Path | None, card: PersonaCard, prompt_template: str,
          env: dict[str, str], xtuner: list[str]) -> dict:
    """Merge into merged.partial, give it the training template, check it, then swap it in.
    Without an adapter (full fine-tune) merged.partial already holds the model."""
    from persona.train.template_check import align

    partial, merged = run / "merged.partial", run / "merged"
    if adapter is not None:
        if partial.exists():
            shutil.rmtree(partial)
        say(f"xtuner convert merge -> {merged}")
        log = run / "work" / "merge.log"
        run_logged([*xtuner, "convert", "merge", base, str(adapter), str(partial),
                    "--safe-serialization"], log, env)
        if not list(partial.glob("*.safetensors")):
            raise PipelineError(f"merge left no safetensors in {partial}:\n{tail(log)}")
    try:
        chat = align(partial, card.default_system_prompt(), prompt_template)
    except ValueError as error:
        raise PipelineError(str(error)) from None
    if merged.exists():
        shutil.rmtree(merged)
    partial.rename(merged)
    return chat


def probe(run: Path) -> list[dict]:
    from persona.train.probe import DEFAULT_QUESTIONS, ask

    say("greedy answers of the merged model (its own chat template):")
    answers = ask(run / "merged", DEFAULT_QUESTIONS)
    for item in answers:
        print(f"       Q: {item['question']}\n       A: {item['answer']}", flush=True)
    (run / "probe.json").write_text(json.dumps(answers, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")
    return answers


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in
            ("xtuner", "transformers", "torch", "bitsandbytes", "mmengine", "peft")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Training options default to None: unset ones come from the preset, then TrainOptions."""
    parser = argparse.ArgumentParser(description="Train, convert and merge a persona with XTuner.")
    parser.add_argument("--card", type=Path, required=True, help="persona card YAML")
    parser.add_argument("--base-model", required=True, help="a Hugging Face model folder (or hub id)")
    parser.add_argument("--out", type=Path, required=True, help="the run folder")
    parser.add_argument("--force", action="store_true", help="retrain even a finished run")
    parser.add_argument("--only-merge", action="store_true",
                        help="convert and merge the run's last checkpoint again, without training")
    parser.add_argument("--no-probe", action="store_true", help="skip the greedy answers at the end")
    parser.add_argument("--dataset", type=Path,
                        help="conversation-format JSON to train on instead of the card's dataset")
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int,
                        help="train this many optimizer steps instead of --epochs")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lora-r", type=int)
    parser.add_argument("--lora-alpha", type=int)
    parser.add_argument("--max-length", type=int, help="tokens per packed sequence")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--accumulative-counts", type=int)
    parser.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None,
                        help="pack samples into max-length sequences (default) or pad each")
    parser.add_argument("--eval-chat", action=argparse.BooleanOptionalAction, default=None,
                        help="XTuner's EvaluateChatHook before and after training")
    parser.add_argument("--save-steps", type=int, help="a resumable checkpoint every N steps")
    parser.add_argument("--seed", type=int, help="data order and training seed")
    parser.add_argument("--repeats", type=int, default=2, help="times each identity phrasing appears")
    parser.add_argument("--plain-repeats", type=int, default=1,
                        help="times each plain (non-identity) question appears")
    parser.add_argument("--replay-ratio", type=float, default=DEFAULT_REPLAY_RATIO,
                        help="general-skill replay samples (the base's own answers) per other "
                             "sample; 0 turns replay off")
    parser.add_argument("--only-data", action="store_true",
                        help="write data/ (with the base's replay answers) and stop")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when torch sees one, else cpu")
    return parser.parse_args(argv)


def given_options(args: argparse.Namespace) -> dict:
    """The training options this command line sets (None for the ones it leaves to defaults)."""
    return {"method": args.method, "epochs": args.epochs, "max_steps": args.max_steps,
            "lr": args.lr, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha,
            "max_length": args.max_length, "batch_size": args.batch_size,
            "accumulative_counts": args.accumulative_counts, "pack_to_max_length": args.pack,
            "eval_chat": args.eval_chat, "save_steps": args.save_steps, "seed": args.seed}


def options_from(args: argparse.Namespace, card: PersonaCard) -> TrainOptions:
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    given = given_options(args)
    if device == "cuda":
        import torch

        given["precision"] = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    try:
        return run_state.resolve_options(card.base, given, device)
    except ValueError as error:
        raise PipelineError(str(error)) from None


def check_base(base: str) -> str:
    """A local folder (resolved) or a hub id; a folder that is not there fails here, not in XTuner."""
    local = Path(base).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise PipelineError(f"base model {local} has no config.json; point it at a Hugging "
                                "Face model folder")
        return str(local.resolve())
    if base.startswith((".", "/", "~")) or base.count("/") != 1:
        raise PipelineError(f"base model {base}: no such folder")
    return base


def only_merge(run: Path) -> tuple:
    """What --only-merge needs from an earlier training: its checkpoint, method and template."""
    config = run / "xtuner_config.py"
    if not config.exists():
        raise PipelineError(f"--only-merge: {config} is missing; train first")
    settings = dict(CONFIG_LINE.findall(config.read_text(encoding="utf-8")))
    checkpoint = final_checkpoint(run / "work")
    old = run_state.read_manifest(run)
    return (checkpoint, settings.get("method", "qlora"), settings.get("prompt_template", "qwen_chat"),
            old.get("hyperparameters"), old.get("dataset"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        card = load_card(args.card)
        samples = load_samples(args.dataset) if args.dataset else None
    except (CardError, DatasetError) as error:
        raise PipelineError(str(error)) from None
    base = check_base(args.base_model)
    run = args.out.expanduser().resolve()

    if args.only_data:
        if run_state.finished(run) and not args.force:
            say(f"{run} holds a finished run: its dataset is in {run / 'data'} (left as it is)")
            return 0
        build_data(card, run, base, args, TrainOptions().seed if args.seed is None else args.seed)
        say(f"dataset written to {run / 'data'}")
        return 0
    if not args.only_merge and run_state.finished(run) and not args.force:
        found = run_state.differences(run, card, given_options(args), samples, args.replay_ratio)
        if found:
            raise PipelineError(run_state.refusal(run, found))
        say(f"{card.id} is already trained: {run} (pass --force to retrain)")
        return 0
    options = None if args.only_merge else options_from(args, card)

    run.mkdir(parents=True, exist_ok=True)
    env, xtuner = child_env(run), xtuner_command()
    share_busy_cpu(env)
    clock = Stopwatch()
    if args.only_merge:
        checkpoint, method, template, hyperparameters, stats = only_merge(run)
        resumed = None
    else:
        if args.force and (run / "work").exists():
            shutil.rmtree(run / "work")  # --force: train anew, never resume
        method, template, hyperparameters = options.method, options.prompt_template, options.as_dict()
        stats = prepare(card, run, base, options, args, samples)
        clock.lap("data")
        checkpoint, resumed = train(run, options, env, xtuner)
        clock.lap("train")

    converted = convert(run, checkpoint, method, env, xtuner)
    clock.lap("convert")
    chat = merge(run, base, None if method == "full" else converted, card, template, env, xtuner)
    clock.lap("merge")
    answers = [] if args.no_probe else probe(run)
    if answers:
        clock.lap("probe")

    curve = loss_curve(run / "work" / "train.log")
    chart = plot_loss(run, card, curve)
    seconds = [point["s_per_step"] for point in curve]
    manifest = {
        "card": card.model_dump(),
        "card_path": str(args.card.resolve()),
        "base_model": base,
        "method": method,
        "hyperparameters": hyperparameters,
        "dataset": stats,
        "timings_s": {**clock.laps, "total": clock.total()},
        "loss_curve": curve,
        "final_loss": curve[-1]["loss"] if curve else None,
        "mean_s_per_step": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "omp_wait_policy": env.get("OMP_WAIT_POLICY", "default (active)"),
        "checkpoint": str(checkpoint),
        "resumed_from": resumed,
        "artifact": {"merged": "merged", "adapter": None if method == "full" else "adapter",
                     "config": "xtuner_config.py", "dataset": "data/train.json",
                     "dataset_stats": "data/stats.json",
                     "loss_curve": chart.name if chart else None},
        "chat": chat,
        "probe": answers,
        "versions": versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (run / run_state.MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                                          encoding="utf-8")
    say(f"done in {clock.total():.0f} s: {run / 'merged'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PipelineError as error:
        say(f"FAILED: {error}")
        sys.exit(1)
