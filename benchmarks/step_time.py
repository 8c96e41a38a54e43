"""One QLoRA training step of the embedded base on the CPU, variants side by side, interleaved.

  .venv/bin/python benchmarks/step_time.py [--steps 12] [--result FILE]

Each variant is the model a default `persona train` builds (4-bit NF4 base with double
quantisation loaded by train/cpu_patches.load_llm, peft's k-bit preparation, LoRA of the default
rank on every linear layer XTuner picks), taking AdamW steps on one packed sequence of the
default length (256 tokens) whose first positions are unlabelled, as the prompts are in
training: the default card's share of answer tokens (its dataset without replay, rendered in
ChatML and counted with the base's tokenizer; printed and written to the result). The variants
take their steps in turn (A B A B ...), so a machine that slows down during the run slows them
all alike; the median step of each is printed. Runs in the training env, nothing else beside it.

Variants (named as measured in docs/time_to_identity/cpu-step-2026-12-02/step_time.json):
  before      today's CPU default: transformers' loss (the head over every position), peft's
              nn.Dropout (bernoulli_ masks)
  lean-loss   the lean model's loss (train/lean_model.py: the head over the labelled positions
              only), nn.Dropout
  default     the candidate default measured then, not taken: the lean loss and
              train/cpu_dropout.py's masks
  no-dropout  the lean loss, --lora-dropout 0: no mask at all (a different training)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"before": {"lora_dropout": 0.05, "lean_loss": False, "cpu_dropout": False},
            "lean-loss": {"lora_dropout": 0.05, "lean_loss": True, "cpu_dropout": False},
            "default": {"lora_dropout": 0.05, "lean_loss": True, "cpu_dropout": True},
            "no-dropout": {"lora_dropout": 0.0, "lean_loss": True, "cpu_dropout": True}}


def labelled_share(tokenizer) -> float:
    """The share of the default card's training tokens that are answers (labelled)."""
    from persona.card import load_card
    from persona.commands import DEFAULT_CARD
    from persona.train.dataset import build_conversations

    labelled = total = 0
    for sample in build_conversations(load_card(DEFAULT_CARD)):
        for turn in sample["conversation"]:
            system = f"<|im_start|>system\n{turn['system']}<|im_end|>\n" if turn.get("system") else ""
            prompt = f"{system}<|im_start|>user\n{turn['input']}<|im_end|>\n<|im_start|>assistant\n"
            answer = len(tokenizer(turn["output"] + "<|im_end|>\n")["input_ids"])
            total += len(tokenizer(prompt)["input_ids"]) + answer
            labelled += answer if turn.get("output_with_loss", True) else 0
    return labelled / total


def one_step(model, ids, labels, lean_loss: bool):
    """One forward and backward; the lean loss as LeanSupervisedFinetune.compute_loss takes it."""
    if not lean_loss:
        return model(input_ids=ids, labels=labels).loss.backward()
    from persona.train.lean_model import chunked_cross_entropy

    causal_lm = model.get_base_model()
    hidden = causal_lm.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
    chunked_cross_entropy(hidden, causal_lm.get_output_embeddings().weight, labels).backward()


def build(base: str, lora_dropout: float, cpu_dropout: bool):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig
    from xtuner.model.utils import find_all_linear_names

    from persona.train.cpu_dropout import use_cpu_dropout
    from persona.train.cpu_patches import load_llm
    from persona.train.options import TrainOptions

    options = TrainOptions()
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32,
                                      bnb_4bit_use_double_quant=True, bnb_4bit_quant_type="nf4")
    llm = load_llm(pretrained_model_name_or_path=base, torch_dtype=torch.float32,
                   quantization_config=quantization)
    llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=False)
    # what XTuner's SupervisedFinetune targets when the config names none (--lora-targets all)
    lora = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=lora_dropout,
                      target_modules=find_all_linear_names(llm), task_type="CAUSAL_LM")
    model = get_peft_model(llm, lora).train()
    if cpu_dropout:
        use_cpu_dropout(model)  # measured only: training keeps peft's nn.Dropout
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return model, optimizer


def inside(args: argparse.Namespace) -> dict:
    """In the training env: the interleaved steps; returns the result."""
    import torch

    from transformers import AutoTokenizer

    from persona.paths import model_dir
    from persona.train.options import TrainOptions

    base = str(model_dir("smollm2-135m-instruct"))
    models = {name: build(base, variant["lora_dropout"], variant["cpu_dropout"])
              for name, variant in VARIANTS.items()}
    tokens = TrainOptions().max_length  # one packed sequence per step
    vocabulary = next(iter(models.values()))[0].config.vocab_size
    share = labelled_share(AutoTokenizer.from_pretrained(base))
    print(f"labelled share of the default card's tokens: {share:.3f}", flush=True)
    torch.manual_seed(0)
    ids = torch.randint(0, vocabulary, (1, tokens))
    labels = ids.clone()
    labels[:, :round(tokens * (1 - share))] = -100
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for step in range(args.steps + 1):  # step 0 of each warms up, not counted
        for name, (model, optimizer) in models.items():
            start = time.perf_counter()
            one_step(model, ids, labels, VARIANTS[name]["lean_loss"])
            optimizer.step()
            optimizer.zero_grad()
            if step:
                seconds[name].append(time.perf_counter() - start)
        print(f"step {step}/{args.steps}: " + "  ".join(
            f"{name} {s[-1]:.2f} s" for name, s in seconds.items() if s), flush=True)
    baseline = statistics.median(seconds["before"])
    return {"tokens_per_step": tokens, "labelled_share": round(share, 4), "steps_each": args.steps,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "variants": {name: {**VARIANTS[name], "median_s": round(statistics.median(s), 3),
                                "min_s": round(min(s), 3), "max_s": round(max(s), 3),
                                "vs_before": round(statistics.median(s) / baseline, 3)}
                         for name, s in seconds.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="measured steps per variant")
    parser.add_argument("--result", type=Path, help="write the result JSON here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        print("RESULT " + json.dumps(inside(args)), flush=True)
        return
    from persona import envs

    command = [str(envs.python("train")), __file__, "--inside", "--steps", str(args.steps)]
    process = subprocess.run(command, cwd=ROOT, env=envs.command_env("train"), text=True,
                             stdout=subprocess.PIPE)
    if process.returncode != 0:
        sys.exit(f"step_time: the training env's run failed (exit {process.returncode})")
    lines = process.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith("RESULT ")))
    result = json.loads(next(line for line in lines if line.startswith("RESULT "))[7:])
    result = {"command": "benchmarks/step_time.py " + " ".join(argv or sys.argv[1:]),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "machine": platform.machine(), **result}
    print(f"\n{'variant':12} {'median s/step':>14} {'vs before':>10}")
    for name, row in result["variants"].items():
        print(f"{name:12} {row['median_s']:14.3f} {row['vs_before']:10.3f}")
    if args.result:
        args.result.parent.mkdir(parents=True, exist_ok=True)
        args.result.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
