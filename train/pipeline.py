"""Card -> dataset -> `xtuner train` -> `xtuner convert pth_to_hf` -> `xtuner convert merge`
-> a merged safetensors model whose chat template matches training, and a manifest.

Runs inside the training env (the persona CLI does this for you):
  python -m persona.train.pipeline --card CARD --base-model DIR --out RUN_DIR [--method qlora|lora|full]
      [--epochs N] [--max-steps N] [--lr LR] [--lora-r R] [--max-length N] [--no-pack]
      [--dataset FILE] [--force] ...
  python -m persona.train.pipeline --card CARD --base-model DIR --out RUN_DIR --only-merge
  python -m persona.train.pipeline --card CARD --base-model DIR --out RUN_DIR --corrections F --refine

The recipe, one step each, every step a function of the run folder (persona/run_folder.py,
which also documents its layout) and what it needs:
  claim     the run folder made persona's (a foreign folder is refused untouched) and locked
            for the whole job: a second job on it, or a server of it, fails at once
  setup     XTuner's command and environment, the CPU's other load
  data      data/, options.json, xtuner_config.py          (step_data.py)
  train     xtuner train, resumed where it can be           (step_train.py)
            or, with --refine, a short pass from the finished adapter on the corrections
                                                            (step_refine.py)
  prefer    with --preference-beta, after train: an ORPO pass from the trained adapter
                                                            (step_prefer.py)
  convert   xtuner convert pth_to_hf                        (step_merge.py)
  merge     xtuner convert merge, the training chat template (step_merge.py)
  verify    greedy answers of the merged model              (step_verify.py)
  manifest  written last                                    (step_manifest.py)

An interrupted run resumes from its last checkpoint when rerun with the same config and data.
A finished run is never retrained without --force, and a request that differs from it is
refused. The manifest is removed when convert starts replacing adapter/ and merged/, and written
again only once the whole run has succeeded: it never describes weights it was not written
with, and a run stopped in between is not finished (rerun it, or --force). XTuner's
commands exit 0 even when their child fails, so each stage is judged by the files it must leave.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from persona.base_models import is_hub_id, trusts_remote_code
from persona.card import CardError, PersonaCard, load_card
from persona.errors import PersonaError
from persona.run_folder import RunFolder, RunFolderError, differences, refined_already, refusal
from persona.services import lead_group
from persona.train.cpu_load import share_busy_cpu
from persona.train.dataset_file import DatasetError, load_samples
from persona.train.options import TrainOptions, resolve_options
from persona.train.pipeline_args import given_options, parse_args
from persona.train.progress import PipelineError, Stopwatch, say
from persona.train.step_data import build_data, configure, given_data
from persona.train.step_manifest import write_manifest
from persona.train.step_merge import convert, merge, refuse_undeclared_code
from persona.train.step_prefer import prefer
from persona.train.step_refine import refine
from persona.train.step_train import Trained, earlier, train
from persona.train.step_verify import verify
from persona.train.xtuner_run import XTuner, child_env, xtuner_command


def check_base(base: str) -> str:
    """A local folder (resolved) or a hub id; a folder that is not there fails here, not in XTuner."""
    local = Path(base).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise PipelineError(f"base model {local} has no config.json; point it at a Hugging "
                                "Face model folder")
        return str(local.resolve())
    if not is_hub_id(base):
        raise PipelineError(f"base model {base}: no such folder")
    return base


def options_from(args: argparse.Namespace, card: PersonaCard) -> TrainOptions:
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    given = given_options(args)
    if given.get("precision") in (None, "auto"):
        given["precision"] = auto_precision(device)
    elif device == "cpu" and given["precision"] == "bfloat16" and not cpu_multiplies_bfloat16():
        raise PipelineError("--precision bfloat16: this CPU has no native bfloat16 products "
                            "(AVX512-BF16 or AMX), so torch would emulate them, slower than "
                            "float32; leave --precision out")
    try:
        return resolve_options(card.base, given, device)
    except ValueError as error:
        raise PipelineError(str(error)) from None


def auto_precision(device: str) -> str:
    """What `--precision auto` means: bfloat16 on a GPU that has it, else float16; float32 on
    a CPU. bfloat16 autocast on a CPU (`--precision bfloat16`) trained the default card 11 %
    faster here and passed the evals with fewer general answers kept (docs/training.md, "bfloat16
    on the CPU"): not enough to be the default."""
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def cpu_multiplies_bfloat16() -> bool:
    """Whether oneDNN has native bfloat16 kernels here (AVX512-BF16 or AMX)."""
    import torch

    return any(getattr(torch.cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def setup(run: RunFolder, fresh: bool) -> XTuner:
    """How to call XTuner (work/ emptied when `fresh`: --force never resumes)."""
    xtuner = XTuner(xtuner_command(), child_env(run))
    share_busy_cpu(xtuner.env)
    if fresh:
        run.remove(run.work)
    return xtuner


def data(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace,
         samples: list | None, seed: int) -> dict:
    """data/ (the card's or the given samples); returns the dataset stats."""
    if samples is not None:
        return given_data(run, samples, args.dataset)
    return build_data(run, card, base, seed, args.repeats, args.plain_repeats, args.replay_ratio,
                      args.correction_samples)


def trained_now(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace,
                samples: list | None, options: TrainOptions, xtuner: XTuner,
                clock: Stopwatch) -> Trained:
    """The data and train steps for a new or resumed run."""
    run.remove(run.refine)  # passes from the adapter this training replaces
    run.remove(run.prefer)
    stats = data(run, card, base, args, samples, options.seed)
    configure(run, card, base, options)
    clock.lap("data")
    trained = train(run, options, stats, xtuner)
    clock.lap("train")
    if options.preference_beta:
        trained = prefer(run, card, base, options, trained, xtuner)
        clock.lap("prefer")
    return trained


def recipe(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace,
           samples: list | None) -> None:
    """claim -> the steps, the run locked throughout."""
    # bad options fail before the run folder is touched
    options = None if args.only_merge else options_from(args, card)
    run.claim(card.id)
    with run.lock("merge" if args.only_merge else "train"):
        steps(run, card, base, args, samples, options)


def steps(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace,
          samples: list | None, options: TrainOptions | None) -> None:
    """setup -> (data -> train, or the earlier training for --only-merge) -> the rest."""
    xtuner = setup(run, fresh=args.force and not args.only_merge)
    clock = Stopwatch()
    if options is None:
        trained = earlier(run)
    else:
        trained = trained_now(run, card, base, args, samples, options, xtuner, clock)
    finish(run, card, base, args, trained, xtuner, clock)


def refined(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace) -> None:
    """--refine: the finished run's adapter trained a short pass on the corrections, then the
    rest; the run locked throughout."""
    try:
        if refined_already(run, card, given_options(args), args.correction_samples):
            say(f"{card.id} is already refined with these corrections: {run.root}")
            return
    except RunFolderError as error:
        raise PipelineError(str(error)) from None
    run.claim(card.id)
    with run.lock("train"):
        xtuner = setup(run, fresh=False)
        clock = Stopwatch()
        trained = refine(run, card, base, args.correction_samples, xtuner)
        clock.lap("refine")
        finish(run, card, base, args, trained, xtuner, clock)


def finish(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace,
           trained: Trained, xtuner: XTuner, clock: Stopwatch) -> None:
    """convert -> merge -> verify -> manifest."""
    method = trained.options.get("method", "qlora")
    converted = convert(run, trained.checkpoint, method, xtuner)
    clock.lap("convert")
    chat = merge(run, base, None if method == "full" else converted, card,
                 trained.options.get("prompt_template", "qwen_chat"), xtuner)
    clock.lap("merge")
    answers = [] if args.no_probe else verify(run, trusts_remote_code(card))
    if answers:
        clock.lap("probe")
    write_manifest(run, card, args.card, base, trained, chat, answers, clock,
                   xtuner.env.get("OMP_WAIT_POLICY", "default (active)"))
    say(f"done in {clock.total():.0f} s: {run.merged}")


def reused(run: RunFolder, card: PersonaCard, args: argparse.Namespace,
           samples: list | None) -> bool:
    """A finished run is kept as it is: True when it matches the request, refused otherwise."""
    if args.force or not run.finished():
        return False
    found = differences(run, card, given_options(args), samples, args.replay_ratio,
                        args.correction_samples)
    if found:
        raise PipelineError(refusal(run, found))
    say(f"{card.id} is already trained: {run.root} (pass --force to retrain)")
    return True


def only_data(run: RunFolder, card: PersonaCard, base: str, args: argparse.Namespace) -> int:
    if run.finished() and not args.force:
        say(f"{run.root} holds a finished run: its dataset is in {run.data} (left as it is)")
        return 0
    seed = TrainOptions().seed if args.seed is None else args.seed
    run.claim(card.id)
    with run.lock("data"):
        build_data(run, card, base, seed, args.repeats, args.plain_repeats, args.replay_ratio,
                   args.correction_samples)
    say(f"dataset written to {run.data}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        card = load_card(args.card)
        samples = load_samples(args.dataset) if args.dataset else None
        args.correction_samples = load_samples(args.corrections) if args.corrections else None
    except (CardError, DatasetError) as error:
        raise PipelineError(str(error)) from None
    base = check_base(args.base_model)
    refuse_undeclared_code(base, card)  # before anything is written: a folder's own code
    run = RunFolder.at(args.out)
    if args.only_data:
        return only_data(run, card, base, args)
    if args.refine:
        refined(run, card, base, args)
        return 0
    if not args.only_merge and reused(run, card, args, samples):
        return 0
    recipe(run, card, base, args, samples)
    return 0


if __name__ == "__main__":
    # persona starts this as its process group's leader: stopped, or orphaned (SIGTERM from the
    # kernel), it takes XTuner and the trainer along, and lets go of the run only after them
    lead_group()
    try:
        sys.exit(main())
    except PersonaError as error:  # the pipeline's own, or the run folder's (claimed, locked)
        say(f"FAILED: {error}")
        sys.exit(1)
