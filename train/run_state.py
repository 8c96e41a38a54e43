"""What a run folder holds and whether a request matches it: the options a run trains with
(the preset's defaults, then what the user asked for), whether it finished, and how a new
request differs from a finished run. Pure Python: the CLI checks all this before any heavy work.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona.base_models import preset_of, prompt_template
from persona.card import PersonaCard
from persona.train.xtuner_config import FULL_LR, TrainOptions

MANIFEST = "manifest.json"
# Options that do not change the trained model: never a reason to refuse a finished run.
BOOKKEEPING = {"save_steps", "save_total_limit", "log_interval", "eval_chat"}


def resolve_options(base: str, given: dict, device: str = "cpu") -> TrainOptions:
    """TrainOptions from TrainOptions' defaults, the base preset's, then `given` (None = unset).

    Raises ValueError with a message a user can act on.
    """
    given = {name: value for name, value in given.items() if value is not None}
    unknown = set(given) - set(TrainOptions.names())
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
    preset = preset_of(base)
    values = {"prompt_template": prompt_template(base), **(preset.train_defaults if preset else {})}
    if given.get("method") == "full" and "lr" not in given:
        values["lr"] = FULL_LR
    return TrainOptions(**{**values, **given, "device": device})


def finished(run: Path) -> bool:
    return (run / MANIFEST).is_file() and (run / "merged" / "config.json").is_file()


def read_manifest(run: Path) -> dict:
    path = run / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def differences(run: Path, card: PersonaCard, given: dict, samples: list | None = None,
                replay_ratio: float | None = None) -> list[str]:
    """How this request differs from the finished run in `run`: changed card fields, training
    options the user gave that the run did not use, another dataset or replay ratio. Empty when
    it matches."""
    manifest = read_manifest(run)
    found = []
    old_card, new_card = _flat(manifest.get("card", {})), _flat(card.model_dump())
    for key in sorted(set(old_card) | set(new_card)):
        if old_card.get(key) != new_card.get(key):
            found.append(f"card {key}: {old_card.get(key)!r} in the run, {new_card.get(key)!r} now")
    used = manifest.get("hyperparameters") or {}
    for name, value in given.items():
        if value is not None and name in used and used[name] != value and name not in BOOKKEEPING:
            found.append(f"{name}: {used[name]!r} in the run, {value!r} requested")
    old_ratio = (manifest.get("dataset") or {}).get("replay_ratio")
    if samples is None and None not in (old_ratio, replay_ratio) and old_ratio != replay_ratio:
        found.append(f"replay_ratio: {old_ratio!r} in the run, {replay_ratio!r} requested")
    if samples is not None:
        trained = run / "data" / "train.json"
        if not trained.is_file() or json.loads(trained.read_text(encoding="utf-8")) != samples:
            found.append("dataset: the run trained on other samples than --dataset holds")
    return found


def refusal(run: Path, found: list[str]) -> str:
    return (f"{run} holds a finished run trained differently:\n  " + "\n  ".join(found)
            + "\npass --force to retrain it in place, or --out DIR for a separate run")
