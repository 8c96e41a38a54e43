"""The refine step (`persona train --refine`): a short pass that starts from the finished run's
LoRA adapter and trains on the user's corrections, each CORRECTION_REPEATS times, among a
sample of the run's own training samples (so what it learnt is rehearsed, not overwritten), at
a fraction of the run's learning rate. Minutes instead of a retrain from the base; the
convert and merge steps that follow are the training's own. The pass keeps its files in
refine/ (persona/run_folder.py); the manifest's dataset records the corrections and the pass.

Each call starts from the adapter that is there: a second pass with a newer corrections file
(`persona feedback export` writes all of a persona's thumbs-down answers each time) refines the
first pass's persona."""

from __future__ import annotations

import random

from persona.base_models import trusts_remote_code
from persona.card import PersonaCard
from persona.run_folder import RunFolder, checkpoint_step, read_json, samples_digest, write_json
from persona.train.options import TrainOptions
from persona.train.progress import PipelineError, say
from persona.train.step_data import identity_probes
from persona.train.step_train import Trained, announce, xtuner_train
from persona.train.xtuner_config import render_config
from persona.train.xtuner_log import loss_curve
from persona.train.xtuner_run import XTuner

# Measured side by side on the default persona (docs/training.md, "Correcting a persona"): at
# half the run's rate and 16 rehearsal samples per correction the pass fixed 3 of 4 thumbs-down
# answers and spread one correction's wording into others; this fixed all 4 and kept the suite.
CORRECTION_REPEATS = 6  # times each correction appears in the pass
REHEARSAL_PER_CORRECTION = 32  # samples of the run's own data per correction, at least
MIN_REHEARSAL = 128
LR_FACTOR = 0.25  # of the run's learning rate, annealed over the pass


def refine_samples(corrections: list[dict], trained_on: list[dict], seed: int) -> list[dict]:
    """The pass's samples: the corrections repeated, and a rehearsal sample of the run's data."""
    rng = random.Random(seed)
    wanted = max(MIN_REHEARSAL, REHEARSAL_PER_CORRECTION * len(corrections))
    samples = corrections * CORRECTION_REPEATS + rng.sample(trained_on, min(wanted, len(trained_on)))
    rng.shuffle(samples)
    return samples


def pass_options(run: RunFolder, manifest: dict) -> TrainOptions:
    """The run's own options (its manifest's), one epoch over the pass at LR_FACTOR its rate,
    annealed from the first step."""
    try:
        options = TrainOptions(**(manifest.get("hyperparameters") or {}))
    except ValueError as error:
        raise PipelineError(f"{run.manifest}: its training options are unusable ({error}); "
                            "retrain the run with --force") from None
    # No warmup: it starts from trained weights (warmup_ratio 0 is none, train/warmup.py)
    return options.model_copy(update={"lr": options.lr * LR_FACTOR, "epochs": 1, "max_steps": None,
                                      "warmup_ratio": 0.0})


def refine(run: RunFolder, card: PersonaCard, base: str, corrections: list[dict],
           xtuner: XTuner) -> Trained:
    """Train the pass in refine/ (a new one each time); its checkpoint, the run's options and
    its dataset stats with the corrections and the pass added."""
    manifest = run.read_manifest()
    options = pass_options(run, manifest)
    samples = refine_samples(corrections, read_json(run.train_data), options.seed)
    run.remove(run.refine)
    write_json(run.refine_data, samples)
    run.refine_config.write_text(render_config(
        card.id, base, run.refine_data, options, identity_probes(run), trusts_remote_code(card),
        start_adapter=run.adapter), encoding="utf-8")
    say(f"refining {card.id} from its adapter: {len(corrections)} corrections x "
        f"{CORRECTION_REPEATS} among {len(samples) - len(corrections) * CORRECTION_REPEATS} of "
        f"its own samples")
    announce(options, run.refine_log)
    checkpoint = xtuner_train(run, run.refine_config, run.refine_work, run.refine_log, xtuner)
    curve = loss_curve(run.refine_log)
    stats = {**(manifest.get("dataset") or {}), "corrections": {
        "samples": len(corrections), "digest": samples_digest(corrections),
        "refined": {"samples": len(samples), "steps": checkpoint_step(checkpoint),
                    "lr": options.lr, "final_loss": curve[-1]["loss"] if curve else None,
                    "data": run.relative(run.refine_data)}}}
    return Trained(checkpoint, manifest.get("hyperparameters") or {}, stats)
