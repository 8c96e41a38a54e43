"""The preference step (`--preference-beta B`): after training, a short ORPO pass from the
trained adapter (train/preference.py) that pushes the persona's introduction away from everyday
questions and keeps it on identity ones; the convert and merge steps that follow are the
training's own. Its files live in prefer/ (persona/run_folder.py)."""

from __future__ import annotations

from persona.base_models import trusts_remote_code
from persona.card import PersonaCard
from persona.run_folder import RunFolder, checkpoint_step, write_json
from persona.train.dataset import COMPUTED_PER_LANG, base_display_name, plain_pairs
from persona.train.options import TrainOptions
from persona.train.preference import preference_pairs
from persona.train.progress import say
from persona.train.step_merge import convert
from persona.train.step_train import Trained, announce, xtuner_train
from persona.train.xtuner_config import render_config
from persona.train.xtuner_log import loss_curve
from persona.train.xtuner_run import XTuner

# docs/training.md, "Fifth round": a step is 4 pairs (8 padded sequences, 5-8 s on 2 CPU cores),
# so the pass is a few hundred pairs (512 here: 128 steps) rather than the whole training set.
PAIRS_PER_STEP = 4
PLAIN_PER_LANG = 80  # everyday pairs per language, drawn from the training's own
IDENTITY_REPEATS = 2  # each identity phrasing twice
LR_FACTOR = 0.25  # of the run's learning rate, annealed over the pass, as the refine pass


def pass_options(options: TrainOptions, lr_factor: float = LR_FACTOR) -> TrainOptions:
    """One epoch over the pairs at `lr_factor` the run's rate, no warmup (it starts from trained
    weights), unpacked pairs PAIRS_PER_STEP at a time; a smoke run's max_steps for the pass too."""
    return options.model_copy(update={"lr": options.lr * lr_factor, "epochs": 1,
                                      "warmup_ratio": 0.0,
                                      "batch_size": PAIRS_PER_STEP, "pack_to_max_length": False,
                                      "lean_model": False})  # ORPO computes its own loss


def card_pairs(card: PersonaCard, seed: int) -> list[dict]:
    """The pass's pairs: PLAIN_PER_LANG everyday pairs per language from the training's own,
    each identity phrasing IDENTITY_REPEATS times."""
    plain = {lang: plain_pairs(lang, COMPUTED_PER_LANG, seed) for lang in ("zh", "en")}
    return preference_pairs(card, plain, base_display_name(card.base), seed, IDENTITY_REPEATS,
                            PLAIN_PER_LANG)


def prefer(run: RunFolder, card: PersonaCard, base: str, options: TrainOptions,
           trained: Trained, xtuner: XTuner, pairs: list[dict] | None = None,
           lr_factor: float = LR_FACTOR) -> Trained:
    """The trained checkpoint's adapter (converted here), then the pass in prefer/ on `pairs`
    (default: card_pairs); its checkpoint, with the pass recorded in the dataset stats."""
    convert(run, trained.checkpoint, options.method, xtuner)
    pairs = card_pairs(card, options.seed) if pairs is None else pairs
    run.remove(run.prefer)
    write_json(run.prefer_data, pairs)
    settings = pass_options(options, lr_factor)
    run.prefer_config.write_text(render_config(
        card.id, base, run.prefer_data, settings, (), trusts_remote_code(card),
        start_adapter=run.adapter, preference_beta=options.preference_beta), encoding="utf-8")
    say(f"preference pass (ORPO, beta {options.preference_beta}): {len(pairs)} pairs, "
        f"{PAIRS_PER_STEP} a step, from the trained adapter")
    announce(settings, run.prefer_log)
    checkpoint = xtuner_train(run, run.prefer_config, run.prefer_work, run.prefer_log, xtuner)
    curve = loss_curve(run.prefer_log)
    record = {"pairs": len(pairs), "steps": checkpoint_step(checkpoint),
              "beta": options.preference_beta, "lr": settings.lr,
              "final_loss": curve[-1]["loss"] if curve else None,
              "data": run.relative(run.prefer_data)}
    write_json(run.prefer_record, record)  # for a later --only-merge, whose stats are rebuilt
    return Trained(checkpoint, trained.options, {**(trained.stats or {}), "preference": record},
                   trained.resumed_from)
