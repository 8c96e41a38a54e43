"""A dataset file a user brings (`persona train --dataset FILE`), checked before any heavy work.

XTuner's conversation format, as a JSON list or JSON Lines:
  [{"conversation": [{"system": "...", "input": "...", "output": "..."}, ...]}, ...]
`system` is optional (and only meaningful on the first turn). Every error names the sample, the
turn and the field. Pure Python: the CLI imports this.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona.errors import PersonaError


class DatasetError(PersonaError, ValueError):
    """A dataset that cannot be trained on; the message says where and what to fix."""


FORMAT = 'a JSON list of {"conversation": [{"system": "", "input": "...", "output": "..."}]}'


def _parse(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty; it needs {FORMAT}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole:
        if path.suffix != ".jsonl":
            raise DatasetError(f"{path}: not valid JSON ({whole}); it needs {FORMAT}") from None
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}: line {number} is not valid JSON ({error})") from None
    return samples


def _check_turn(where: str, turn: object) -> None:
    if not isinstance(turn, dict):
        raise DatasetError(f"{where}: a turn must be an object with input and output")
    for key in ("input", "output"):
        if not isinstance(turn.get(key), str) or not turn[key].strip():
            raise DatasetError(f"{where}: '{key}' must be non-empty text")
    if not isinstance(turn.get("system", ""), (str, type(None))):
        raise DatasetError(f"{where}: 'system' must be text")


def load_samples(path: str | Path) -> list[dict]:
    """The samples of a dataset file; raises DatasetError on anything XTuner would choke on."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    samples = _parse(path)
    if not isinstance(samples, list):
        raise DatasetError(f"{path}: expected {FORMAT}, found a JSON {type(samples).__name__}")
    if not samples:
        raise DatasetError(f"{path}: the dataset has no samples")
    for number, sample in enumerate(samples):
        turns = sample.get("conversation") if isinstance(sample, dict) else None
        if not isinstance(turns, list) or not turns:
            raise DatasetError(f"{path}: sample {number} needs a non-empty 'conversation' list")
        for index, turn in enumerate(turns):
            _check_turn(f"{path}: sample {number}, turn {index}", turn)
    return samples
