"""QLoRA training on a CUDA GPU: XTuner's stock settings against persona's, side by side.

The models are randomly initialised with the shapes of Qwen2.5-7B-Instruct, Qwen2.5-0.5B-Instruct
and SmolLM2-135M-Instruct (their config.json values below; nothing is downloaded) and share
SmolLM2's tokenizer, whose ids fit every vocabulary. The data is the default card's
self-cognition set (train/dataset.py). Every run is a real `xtuner train` of a config written by
train/xtuner_config.py; figures come from XTuner's own log (one line per iteration):

  tokens/s  max_length x batch x GPUs / median seconds per iteration (first 3 skipped; packed
            sequences are full, except the last of an epoch)
  peak      max of the log's `memory` (torch.cuda.max_memory_allocated, reset at each line) and,
            beside it, the largest `memory.used` nvidia-smi showed during the run (context and
            allocator cache included)
  loss      mean of the first 3 and of the last 5 iterations (identity learned: it must fall)

  python benchmarks/gpu_qlora.py build --out MODELS --tokenizer DIR [--shapes S ...]
  python benchmarks/gpu_qlora.py run --models MODELS --work DIR --runs SHAPE:VARIANT ...
      [--epochs N] [--gpus N] [--set key=value ...] [--tag T] [--json FILE]
  python benchmarks/gpu_qlora.py table FILE ...

Variants: `baseline` is XTuner's stock QLoRA (NF4 double quant, fp16 AMP, LoRA r=64 alpha=16
dropout 0.1 on all linear layers, max length 2048, batch 1, activation checkpointing, lr 2e-4);
the `ours*` ones are what persona's CUDA path does (see VARIANTS). Both use gradient
accumulation 1 (stock: 16), so that the short runs make the same number of optimizer steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHAPES = {  # config.json values of the real models
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
                         max_position_embeddings=8192, rms_norm_eps=1e-5),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0,
                         max_position_embeddings=32768, rms_norm_eps=1e-6),
    "qwen2.5-7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944,
                       num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       vocab_size=152064, tie_word_embeddings=False, rope_theta=1000000.0,
                       max_position_embeddings=32768, rms_norm_eps=1e-6),
    # a few MB, for dry runs of this script on a CPU (--set device=cpu precision=auto)
    "qwen2-tiny": dict(model_type="qwen2", hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       vocab_size=49152, tie_word_embeddings=False, rope_theta=1000000.0,
                       max_position_embeddings=4096, rms_norm_eps=1e-6),
}

STOCK = dict(precision="float16", lean_model=False, lora_r=64, lora_alpha=16, lora_dropout=0.1,
             max_length=2048, activation_checkpointing=True, lr=2e-4, warmup_ratio=0.03)
OURS = dict(STOCK, precision="bfloat16", lean_model=True, lora_r=8, lora_alpha=16,
            lora_dropout=0.0)
VARIANTS = {
    "baseline": STOCK,
    # bf16 AMP and 4-bit compute, chunked loss + frozen embedding/head in bf16, r=8, no dropout
    "ours": OURS,
    # more tokens per step: the per-step CPU work (kernel launches) is spread over more tokens
    "ours-3072": dict(OURS, max_length=3072),
    "ours-4096": dict(OURS, max_length=4096),
    "ours-nockpt": dict(OURS, activation_checkpointing=False),  # small shapes: no recomputation
}
COMMON = dict(device="cuda", method="qlora", batch_size=1, accumulative_counts=1,
              pack_to_max_length=True, eval_chat=False, log_interval=1, seed=42)

ITER = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\]")
FIELD = {name: re.compile(rf"\b{name}:\s*([\d.]+(?:e[-+]?\d+)?)") for name in ("time", "memory", "loss")}


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


# ---------------------------------------------------------------------------------- build
def build(out: Path, tokenizer: Path, shapes: list[str]) -> None:
    """Random bf16 models (initialised on the GPU: seconds, not minutes) with the tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    for name in shapes:
        target = out / name
        if (target / "config.json").exists():
            continue
        started = time.monotonic()
        values = dict(SHAPES[name])
        config = AutoConfig.for_model(values.pop("model_type"), **values, hidden_act="silu",
                                      bos_token_id=1, eos_token_id=2, pad_token_id=2,
                                      torch_dtype="bfloat16")
        torch.manual_seed(0)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
        model.save_pretrained(target, safe_serialization=True, max_shard_size="5GB")
        for file in tokenizer.iterdir():
            if file.is_file():
                shutil.copy(file, target / file.name)
        count = sum(p.numel() for p in model.parameters())
        del model
        say(f"built {name}: {count / 1e9:.2f}B parameters in {time.monotonic() - started:.0f} s")


# ------------------------------------------------------------------------------------ run
def first_gpu() -> str:
    """The first GPU this process may use, as nvidia-smi numbers it."""
    return (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]


class SmiPeak:
    """Largest memory.used (MiB) of the first visible GPU that nvidia-smi reports meanwhile."""

    def __init__(self):
        self.peak = 0
        self.process = None
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "-i", first_gpu(), "--query-gpu=memory.used",
                 "--format=csv,noheader,nounits", "-lms", "200"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            values = [int(v) for v in re.findall(r"\d+", line)]
            if values:
                self.peak = max(self.peak, values[0])

    def stop(self) -> int:
        if self.process:
            self.process.terminate()
            self.process.wait()
        return self.peak


def parse_log(text: str) -> list[dict]:
    points = []
    for line in text.splitlines():
        match = ITER.search(line)
        if not match:
            continue
        point = {"iter": int(match.group(1)), "of": int(match.group(2))}
        for name, pattern in FIELD.items():
            found = pattern.search(line[match.end():])
            if found:
                point[name] = float(found.group(1))
        points.append(point)
    return points


def summarise(points: list[dict], tokens_per_iter: int) -> dict:
    times = [p["time"] for p in points[3:] if "time" in p] or [p["time"] for p in points if "time" in p]
    losses = [p["loss"] for p in points if "loss" in p]
    memory = [p["memory"] for p in points if "memory" in p]
    median = statistics.median(times) if times else None
    return {
        "iters": len(points),
        "s_per_iter": round(median, 4) if median else None,
        "tokens_per_s": round(tokens_per_iter / median) if median else None,
        "peak_allocated_mib": max(memory) if memory else None,
        "first_loss": round(statistics.mean(losses[:3]), 3) if losses else None,
        "final_loss": round(statistics.mean(losses[-5:]), 3) if losses else None,
        "curve": [[p["iter"], p.get("loss")] for p in points],
    }


def train_once(shape: str, variant: str, models: Path, work: Path, data: Path, epochs: int,
               gpus: int, overrides: dict, timeout: int) -> dict:
    from persona.card import load_card
    from persona.run_folder import RunFolder
    from persona.services import spawn, stop, tail
    from persona.train.options import TrainOptions
    from persona.train.xtuner_config import render_config
    from persona.train.xtuner_run import child_env, xtuner_command

    options = TrainOptions(**{**COMMON, **VARIANTS[variant], "epochs": epochs, **overrides})
    folder = RunFolder(work / f"{shape}-{variant}-{gpus}gpu")  # its log goes beside, not in work/
    run = folder.root
    if run.exists():
        shutil.rmtree(run)
    folder.work.mkdir(parents=True)
    card = load_card(REPO / "cards" / "xiaocong.yaml")
    config = folder.config
    text = render_config(card.id, models / shape, data, options, [])
    # mmengine logs 10-iteration moving means of time and loss by default: log each iteration's own
    text = text.replace("log_processor = dict(by_epoch=False)",
                        "log_processor = dict(by_epoch=False, window_size=1)")
    assert "window_size=1" in text
    config.write_text(text, encoding="utf-8")
    env = child_env(folder)
    command = [*xtuner_command(), "train", str(config), "--work-dir", str(folder.work)]
    if gpus > 1:
        env["NPROC_PER_NODE"] = str(gpus)
        command += ["--deepspeed", "deepspeed_zero2"]
    say(f"{shape} {variant} on {gpus} GPU(s): {' '.join(command[-4:])}")
    smi = SmiPeak()
    started = time.monotonic()
    log = run / "train.log"
    process = spawn(command, env, log)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process, grace=0)  # out of time: no grace period
    wall = time.monotonic() - started
    text = log.read_text(errors="replace")
    points = parse_log(text)
    tokens_per_iter = options.max_length * options.batch_size * gpus
    result = {"shape": shape, "variant": variant, "gpus": gpus, "options": options.model_dump(),
              "wall_s": round(wall, 1), "nvidia_smi_peak_mib": smi.stop(),
              "exit": process.returncode, **summarise(points, tokens_per_iter)}
    # `xtuner train` exits 0 even when its child fails: judge by the iterations and checkpoint.
    finished = bool(points) and points[-1]["iter"] == points[-1]["of"]
    result["ok"] = finished and (folder.work / "last_checkpoint").exists()
    if not result["ok"]:
        result["log_tail"] = tail(log, 40)
        print(result["log_tail"], flush=True)
    say(f"  -> {'ok' if result['ok'] else 'FAILED'}: {result['s_per_iter']} s/iter, "
        f"{result['tokens_per_s']} tok/s, peak {result['peak_allocated_mib']} MiB allocated / "
        f"{result['nvidia_smi_peak_mib']} MiB nvidia-smi, loss {result['first_loss']} -> "
        f"{result['final_loss']}, {result['iters']} iters, {wall:.0f} s wall")
    return result


def run(args: argparse.Namespace) -> list[dict]:
    from persona.card import load_card
    from persona.run_folder import RunFolder
    from persona.train.dataset import write_dataset

    work = args.work.resolve()
    data = RunFolder(work)  # the dataset every run below trains on
    stats = write_dataset(load_card(REPO / "cards" / "xiaocong.yaml"), data, repeats=2,
                          plain_repeats=2, seed=42)
    say(f"dataset: {stats['samples']} samples, {stats['characters']} characters")
    overrides = {}
    for item in args.set or []:
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare word: a string
    results = []
    for spec in args.runs:
        shape, variant = spec.split(":")
        results.append(train_once(shape, variant, args.models.resolve(), work,
                                  data.train_data, args.epochs, args.gpus, overrides,
                                  args.timeout))
        for item in results:
            item["tag"] = args.tag
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results), flush=True)
    return results


# ---------------------------------------------------------------------------------- table
def table(results: list[dict]) -> str:
    rows = ["| shape | variant | GPUs | r | max len | s/iter | tokens/s | peak alloc GB (GiB) "
            "| nvidia-smi GB | loss first → final | ok |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        o = r["options"]
        peak = r.get("peak_allocated_mib")
        peak_text = f"{peak * 2**20 / 1e9:.2f} ({peak / 1024:.2f})" if peak else "–"
        smi = r.get("nvidia_smi_peak_mib")
        rows.append(
            f"| {r['shape']} | {r['variant']} | {r['gpus']} | {o['lora_r']} | {o['max_length']} "
            f"| {r.get('s_per_iter')} | {r.get('tokens_per_s')} | {peak_text} "
            f"| {smi * 2**20 / 1e9:.1f} | {r.get('first_loss')} → {r.get('final_loss')} "
            f"| {'yes' if r.get('ok') else 'NO'} |")
    return "\n".join(rows)


def loss_chart(results: list[dict], path: Path) -> Path:
    """One loss curve per run, named by shape, variant and GPU count (e.g. 1 GPU against ZeRO-2)."""
    from persona.plots import line_chart

    series = {f"{r['shape']} {r['variant']}, {r['gpus']} GPU{'s' if r['gpus'] > 1 else ''}":
              [tuple(point) for point in r.get("curve", [])] for r in results}
    return line_chart(path, series, title="training loss per iteration", xlabel="iteration",
                      ylabel="loss (rank 0)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write randomly initialised models")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--tokenizer", type=Path, required=True, help="a folder with tokenizer files")
    b.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    r = sub.add_parser("run", help="train each SHAPE:VARIANT with xtuner train")
    r.add_argument("--models", type=Path, required=True)
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--runs", nargs="+", required=True)
    r.add_argument("--epochs", type=int, default=2)
    r.add_argument("--gpus", type=int, default=1, help=">1: XTuner's DeepSpeed ZeRO-2 launch")
    r.add_argument("--set", nargs="*", help="TrainOptions overrides, key=value")
    r.add_argument("--tag", default="")
    r.add_argument("--timeout", type=int, default=300, help="seconds per run")
    r.add_argument("--json", type=Path)
    t = sub.add_parser("table", help="print the table of result files")
    t.add_argument("files", nargs="+", type=Path)
    t.add_argument("--chart", type=Path, help="also draw the runs' loss curves into this PNG")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.out, args.tokenizer, args.shapes)
    elif args.command == "run":
        results = run(args)
        return 0 if all(item["ok"] for item in results) else 1
    else:
        results = [item for file in args.files for item in json.loads(file.read_text())]
        print(table(results))
        if args.chart:
            loss_chart(results, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
