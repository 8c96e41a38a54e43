"""The data step: data/ (the card's self-cognition samples plus general-skill replay, or the
user's own dataset), then what the run trains with: options.json and xtuner_config.py."""

from __future__ import annotations

from pathlib import Path

from persona.base_models import trusts_remote_code
from persona.card import PersonaCard
from persona.run_folder import RunFolder, samples_digest
from persona.train.dataset import write_data, write_dataset
from persona.train.options import TrainOptions
from persona.train.progress import say
from persona.train.xtuner_config import render_config


def replay_turns(card: PersonaCard, base: str, ratio: float) -> list[dict]:
    """The base's own answers to the bundled general prompts, usable ones rewritten to the persona."""
    if ratio <= 0:
        return []
    from persona.train import replay
    from persona.train.general_prompts import split_prompts

    prompts, _ = split_prompts()
    answers = replay.base_answers(base, prompts, log=say,
                                  trust_remote_code=trusts_remote_code(card))
    turns = replay.replay_turns(card, base, answers)
    say(f"replay: {len(turns)} of {len(answers)} base answers usable (the rest looped, did not "
        "finish or got a clear-cut question wrong)")
    return turns


def _summary(stats: dict, with_replay: bool) -> str:
    replayed = f" ({stats['replay_samples']} replay)" if with_replay else ""
    return (f"{stats['samples']} samples{replayed}, {stats['turns']} turns (zh "
            f"{stats['turns_by_lang']['zh']}, en {stats['turns_by_lang']['en']}), "
            f"{stats['heldout_questions']} held-out questions")


def build_data(run: RunFolder, card: PersonaCard, base: str, seed: int, repeats: int,
               plain_repeats: int, replay_ratio: float, corrections: list | None = None) -> dict:
    """data/ from the card plus general-skill replay and the user's corrections (each
    `repeats` times, as often as an identity phrasing); returns the stats."""
    turns = replay_turns(card, base, replay_ratio)
    say(f"building the dataset of {card.id} ({card.name.en} / {card.name.zh})"
        + (f" with {len(corrections)} corrections" if corrections else ""))
    stats = write_dataset(card, run, extra=(corrections or []) * repeats, repeats=repeats,
                          plain_repeats=plain_repeats, seed=seed, replay=turns,
                          replay_ratio=replay_ratio)
    stats["replay_ratio"] = replay_ratio
    if corrections:
        stats["corrections"] = {"samples": len(corrections), "digest": samples_digest(corrections)}
    say(_summary(stats, with_replay=True))
    return stats


def given_data(run: RunFolder, samples: list, source: Path) -> dict:
    """data/ from the user's own samples (the evals' held-out questions as always)."""
    say(f"training on {source} instead of the card's dataset")
    stats = write_data(run, samples, source=str(source))
    say(_summary(stats, with_replay=False))
    return stats


def identity_probes(run: RunFolder) -> list[str]:
    """What EvaluateChatHook asks before and after training: one held-out "who are you" per
    language."""
    heldout = run.read_heldout()
    return [next(q["question"] for q in heldout if q["lang"] == lang and q["kind"] == "who")
            for lang in ("zh", "en")]


def configure(run: RunFolder, card: PersonaCard, base: str, options: TrainOptions) -> None:
    """options.json and the XTuner config, both from the resolved options."""
    run.write_options(options.model_dump())
    run.config.write_text(render_config(card.id, base, run.train_data, options,
                                        identity_probes(run), trusts_remote_code(card)),
                          encoding="utf-8")
