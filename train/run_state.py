"""Whether a request matches the finished run in a folder, and how it differs when it does not.
Pure Python: the CLI checks this before any heavy work.
"""

from __future__ import annotations

from persona.card import PersonaCard
from persona.run_folder import RunFolder, read_json

# Options that do not change the trained model: never a reason to refuse a finished run.
BOOKKEEPING = {"save_steps", "save_total_limit", "log_interval", "eval_chat"}


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def differences(run: RunFolder, card: PersonaCard, given: dict, samples: list | None = None,
                replay_ratio: float | None = None) -> list[str]:
    """How this request differs from the finished run in `run`: changed card fields, training
    options the user gave that the run did not use, another dataset or replay ratio. Empty when
    it matches."""
    manifest = run.read_manifest()
    found = []
    old_card, new_card = _flat(manifest.get("card", {})), _flat(card.model_dump())
    for key in sorted(set(old_card) | set(new_card)):
        if old_card.get(key) != new_card.get(key):
            found.append(f"card {key}: {old_card.get(key)!r} in the run, {new_card.get(key)!r} now")
    # The manifest's options: options.json may already belong to a retraining under way.
    used = manifest.get("hyperparameters") or {}
    for name, value in given.items():
        if value is not None and name in used and used[name] != value and name not in BOOKKEEPING:
            found.append(f"{name}: {used[name]!r} in the run, {value!r} requested")
    old_ratio = (manifest.get("dataset") or {}).get("replay_ratio")
    if samples is None and None not in (old_ratio, replay_ratio) and old_ratio != replay_ratio:
        found.append(f"replay_ratio: {old_ratio!r} in the run, {replay_ratio!r} requested")
    if samples is not None:
        if not run.train_data.is_file() or read_json(run.train_data) != samples:
            found.append("dataset: the run trained on other samples than --dataset holds")
    return found


def refusal(run: RunFolder, found: list[str]) -> str:
    return (f"{run.root} holds a finished run trained differently:\n  " + "\n  ".join(found)
            + "\npass --force to retrain it in place, or --out DIR for a separate run")
