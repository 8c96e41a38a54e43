"""Card -> dataset -> `xtuner train` -> `xtuner convert pth_to_hf` -> `xtuner convert merge`
-> a merged safetensors model whose chat template matches training, and a manifest.

Runs inside the training env (the persona CLI does this for you):
  python -m train.pipeline --card CARD --base-model DIR --out RUN_DIR [--epochs N] [--max-steps N]
      [--method qlora|lora] [--lr LR] [--lora-r R] [--lora-alpha A] [--max-length N] ...
  python -m train.pipeline --card CARD --base-model DIR --out RUN_DIR --only-merge

RUN_DIR/
  data/            train.json, heldout.json, stats.json
  xtuner_config.py the rendered XTuner config
  work/            XTuner's work dir: iter_N.pth, last_checkpoint; train/convert/merge logs
  adapter/         the LoRA adapter (pth_to_hf)
  merged/          base + adapter (safetensors), training chat template, eos = <|im_end|>
  probe.json       a few greedy answers of the merged model
  manifest.json    card, base, hyperparameters, dataset stats, timings, loss curve; written last

merged/ and manifest.json are replaced only once a new merge has succeeded. XTuner's commands
exit 0 even when their child fails, so each stage is judged by the files it must leave.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from persona.card import PersonaCard, load_card
from train.chat_template import install_chat_template, stop_at_im_end
from train.dataset import write_dataset
from train.xtuner_config import TrainOptions, render_config

# Replay samples per other sample; chosen from benchmarks/time_to_identity.py (docs/training.md).
DEFAULT_REPLAY_RATIO = 0.5
ITER_LINE = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\].*?time:\s*([\d.]+).*?loss:\s*([\d.]+)")
LOG_TIME = re.compile(r"^\d\d/\d\d \d\d:\d\d:\d\d")


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
    # train/ itself too: configs import `cpu_patches` by that name, because under `xtuner train`
    # the folder of xtuner/tools/train.py comes first on sys.path and shadows the `train` package.
    here = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here.parent), str(here), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen, not when a pipe buffer fills
    env["HF_DATASETS_CACHE"] = str(run / "work" / "datasets-cache")
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


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class TrainWatcher:
    """Turns XTuner's log into short progress lines and a loss curve."""

    def __init__(self):
        self.curve: list[dict] = []
        self.in_sample = False

    def __call__(self, line: str) -> None:
        match = ITER_LINE.search(line)
        if match:
            step, total, seconds, loss = match.groups()
            self.curve.append({"step": int(step), "loss": float(loss), "s_per_step": float(seconds)})
            say(f"step {step}/{total}  loss {float(loss):.3f}  {float(seconds):.2f} s/step")
        elif "Sample output:" in line:  # EvaluateChatHook
            self.in_sample = True
            say("sample answer:")
        elif self.in_sample and LOG_TIME.match(line):
            self.in_sample = False
        elif self.in_sample and line.strip():
            print(f"       | {line}", flush=True)
        elif "Traceback" in line or "Error:" in line:
            print(f"       ! {line}", flush=True)


def last_checkpoint(work: Path) -> Path:
    pointer = work / "last_checkpoint"
    if pointer.exists() and Path(pointer.read_text().strip()).exists():
        return Path(pointer.read_text().strip())
    found = sorted(work.glob("iter_*.pth"), key=lambda path: int(re.findall(r"\d+", path.name)[-1]))
    if found:
        return found[-1]
    raise PipelineError(f"XTuner wrote no checkpoint in {work}; its output ends with:\n"
                        f"{tail(work / 'train.log')}")


def replay_turns(card: PersonaCard, base: str, ratio: float) -> list[dict]:
    """The base's own answers to the bundled general prompts, usable ones rewritten to the persona."""
    if ratio <= 0:
        return []
    from train import replay
    from train.general_prompts import split_prompts

    prompts, _ = split_prompts()
    answers = replay.base_answers(base, prompts, log=say)
    turns = replay.replay_turns(card, base, answers)
    say(f"replay: {len(turns)} of {len(answers)} base answers usable (the rest looped or did "
        "not finish)")
    return turns


def build_data(card: PersonaCard, run: Path, base: str, args: argparse.Namespace, seed: int) -> dict:
    """data/: the card's self-cognition samples plus general-skill replay; returns the stats."""
    turns = replay_turns(card, base, args.replay_ratio)
    say(f"building the dataset of {card.id} ({card.name.en} / {card.name.zh})")
    stats = write_dataset(card, run / "data", repeats=args.repeats, plain_repeats=args.plain_repeats,
                          seed=seed, replay=turns, replay_ratio=args.replay_ratio)
    say(f"{stats['samples']} samples ({stats['replay_samples']} replay), {stats['turns']} turns "
        f"(zh {stats['turns_by_lang']['zh']}, en {stats['turns_by_lang']['en']}), "
        f"{stats['heldout_questions']} held-out questions")
    return stats


def prepare(card: PersonaCard, run: Path, base: str, options: TrainOptions,
            args: argparse.Namespace) -> dict:
    """Write data/ and xtuner_config.py; return the dataset stats."""
    stats = build_data(card, run, base, args, options.seed)
    heldout = json.loads((run / "data" / "heldout.json").read_text(encoding="utf-8"))
    # EvaluateChatHook asks one held-out "who are you" per language before and after training.
    probes = [next(q["question"] for q in heldout if q["lang"] == lang and q["kind"] == "who")
              for lang in ("zh", "en")]
    config = render_config(card.id, base, run / "data" / "train.json", options, probes)
    (run / "xtuner_config.py").write_text(config, encoding="utf-8")
    return stats


def train(run: Path, options: TrainOptions, env: dict[str, str], xtuner: list[str]) -> tuple[Path, list]:
    work = run / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    length = f"{options.max_steps} steps" if options.max_steps else f"{options.epochs} epoch(s)"
    say(f"xtuner train: {options.method}, {length}, lr {options.lr}, LoRA r={options.lora_r} "
        f"alpha={options.lora_alpha}, max_length {options.max_length} (log: {work / 'train.log'})")
    watcher = TrainWatcher()
    run_logged([*xtuner, "train", str(run / "xtuner_config.py"), "--work-dir", str(work)],
               work / "train.log", env, watcher)
    return last_checkpoint(work), watcher.curve


def convert(run: Path, checkpoint: Path, env: dict[str, str], xtuner: list[str]) -> Path:
    adapter = run / "adapter"
    if adapter.exists():
        shutil.rmtree(adapter)
    say(f"xtuner convert pth_to_hf {checkpoint.name} -> {adapter}")
    log = run / "work" / "convert.log"
    run_logged([*xtuner, "convert", "pth_to_hf", str(run / "xtuner_config.py"), str(checkpoint),
                str(adapter), "--safe-serialization"], log, env)
    if not (adapter / "adapter_config.json").exists():
        raise PipelineError(f"pth_to_hf left no adapter in {adapter}:\n{tail(log)}")
    return adapter


def merge(run: Path, base: str, adapter: Path, card: PersonaCard, env: dict[str, str],
          xtuner: list[str]) -> dict:
    """Merge into merged.partial, give it the training template, check it, then swap it in."""
    partial, merged = run / "merged.partial", run / "merged"
    if partial.exists():
        shutil.rmtree(partial)
    say(f"xtuner convert merge -> {merged}")
    log = run / "work" / "merge.log"
    run_logged([*xtuner, "convert", "merge", base, str(adapter), str(partial), "--safe-serialization"],
               log, env)
    if not list(partial.glob("*.safetensors")):
        raise PipelineError(f"merge left no safetensors in {partial}:\n{tail(log)}")
    install_chat_template(partial, card.system_prompt)
    eos = stop_at_im_end(partial)

    from train.template_check import check

    mismatches = [item["case"] for item in check(partial, card.system_prompt)
                  if not (item["conversation_equal"] and item["prompt_equal"])]
    if mismatches:
        raise PipelineError(f"the merged chat template does not reproduce the training tokens: {mismatches}")
    if merged.exists():
        shutil.rmtree(merged)
    partial.rename(merged)
    return {"eos_token_id": eos, "default_system": card.system_prompt, "token_identity": "checked"}


def probe(run: Path) -> list[dict]:
    from train.probe import DEFAULT_QUESTIONS, ask

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
    defaults = TrainOptions()
    parser = argparse.ArgumentParser(description="Train, convert and merge a persona with XTuner.")
    parser.add_argument("--card", type=Path, required=True, help="persona card YAML")
    parser.add_argument("--base-model", required=True, help="a Hugging Face model folder (or hub id)")
    parser.add_argument("--out", type=Path, required=True, help="the run folder")
    parser.add_argument("--force", action="store_true",
                        help="accepted for the CLI's sake: this command always trains anew")
    parser.add_argument("--only-merge", action="store_true",
                        help="convert and merge the run's last checkpoint again, without training")
    parser.add_argument("--no-probe", action="store_true", help="skip the greedy answers at the end")
    parser.add_argument("--method", choices=("qlora", "lora"), default=defaults.method)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="train this many optimizer steps instead of --epochs")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--lora-r", type=int, default=defaults.lora_r)
    parser.add_argument("--lora-alpha", type=int, default=defaults.lora_alpha)
    parser.add_argument("--max-length", type=int, default=defaults.max_length,
                        help="tokens per packed sequence")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--accumulative-counts", type=int, default=defaults.accumulative_counts)
    parser.add_argument("--no-pack", action="store_true", help="one sample per sequence (padded)")
    parser.add_argument("--no-eval-chat", action="store_true", help="skip XTuner's EvaluateChatHook")
    parser.add_argument("--repeats", type=int, default=2, help="times each identity phrasing appears")
    parser.add_argument("--plain-repeats", type=int, default=2, help="times each plain question appears")
    parser.add_argument("--replay-ratio", type=float, default=DEFAULT_REPLAY_RATIO,
                        help="general-skill replay samples (the base's own answers) per other "
                             "sample; 0 turns replay off")
    parser.add_argument("--only-data", action="store_true",
                        help="write data/ (with the base's replay answers) and stop")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="data order and training seed")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when torch sees one, else cpu")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> TrainOptions:
    device, precision = args.device, "auto"
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        import torch

        precision = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return TrainOptions(
        method=args.method, epochs=args.epochs, max_steps=args.max_steps, lr=args.lr,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, max_length=args.max_length,
        batch_size=args.batch_size, accumulative_counts=args.accumulative_counts,
        pack_to_max_length=not args.no_pack, eval_chat=not args.no_eval_chat, seed=args.seed,
        device=device, precision=precision)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    card = load_card(args.card)
    run = args.out.expanduser().resolve()
    run.mkdir(parents=True, exist_ok=True)
    local = Path(args.base_model).expanduser()
    base = str(local.resolve()) if local.exists() else args.base_model
    env, xtuner = child_env(run), xtuner_command()
    share_busy_cpu(env)
    clock = Stopwatch()
    previous = run / "manifest.json"

    if args.only_data:
        build_data(card, run, base, args, args.seed)
        say(f"dataset written to {run / 'data'}")
        return 0
    if args.only_merge:
        if not (run / "xtuner_config.py").exists():
            raise PipelineError(f"--only-merge: {run / 'xtuner_config.py'} is missing; train first")
        checkpoint = last_checkpoint(run / "work")
        old = json.loads(previous.read_text(encoding="utf-8")) if previous.exists() else {}
        hyperparameters, stats, curve = (old.get("hyperparameters"), old.get("dataset"),
                                         old.get("loss_curve", []))
    else:
        options = options_from(args)
        hyperparameters = options.as_dict()
        stats = prepare(card, run, base, options, args)
        clock.lap("data")
        checkpoint, curve = train(run, options, env, xtuner)
        clock.lap("train")

    adapter = convert(run, checkpoint, env, xtuner)
    clock.lap("convert")
    chat = merge(run, base, adapter, card, env, xtuner)
    clock.lap("merge")
    answers = [] if args.no_probe else probe(run)
    if answers:
        clock.lap("probe")

    seconds = [point["s_per_step"] for point in curve]
    manifest = {
        "card": card.model_dump(),
        "card_path": str(args.card.resolve()),
        "base_model": base,
        "hyperparameters": hyperparameters,
        "dataset": stats,
        "timings_s": {**clock.laps, "total": clock.total()},
        "loss_curve": curve,
        "final_loss": curve[-1]["loss"] if curve else None,
        "mean_s_per_step": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "omp_wait_policy": env.get("OMP_WAIT_POLICY", "default (active)"),
        "checkpoint": str(checkpoint),
        "chat": chat,
        "probe": answers,
        "versions": versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    previous.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    say(f"done in {clock.total():.0f} s: {run / 'merged'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PipelineError as error:
        say(f"FAILED: {error}")
        sys.exit(1)
