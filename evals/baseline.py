"""The untuned base's run of the suite, to compare a persona with (the tutorial's 微调前).

Either live — `persona eval --compare-base` runs the suite against the base first and hands its
report.json to the persona's run — or stored in evals/baselines/<base>.json, which `pytest
evals/` uses by itself when the card's base has one. Store a fresh one with
`python -m persona.evals.baseline REPORT_JSON BASE_NAME` after the question set changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from persona.errors import PersonaError

STORED = Path(__file__).resolve().parent / "baselines"
KEPT = ("model", "categories", "general_skills")  # all a comparison needs; answers stay out


class BaselineError(PersonaError, ValueError):
    """A base run that cannot be compared with; the message says how to make one."""


def stored_path(base: str) -> Path:
    return STORED / f"{Path(base).name}.json"


def load(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"{path}: no base report there; run `persona eval --compare-base` "
                            "or pass the report.json of a suite run against the base")
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in KEPT if key not in data]
    if missing:
        raise BaselineError(f"{path}: not a base report of this suite (lacks {missing}); "
                            "re-run the suite against the base to write one")
    return data


def find(option: str | None, base: str) -> dict | None:
    """The report named by --reference-report, else the stored run of the card's base, else None."""
    if option:
        return load(Path(option))
    stored = stored_path(base)
    return load(stored) if stored.is_file() else None


def store(report: Path, base: str) -> Path:
    data = load(report)
    target = stored_path(base)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({key: data[key] for key in KEPT}, ensure_ascii=False, indent=1)
                      + "\n", encoding="utf-8")
    return target


def retention(general: dict[str, bool], reference: dict) -> dict:
    """Right answers of the persona and of the base on the general questions both were asked."""
    theirs = reference["general_skills"]
    asked = [question for question in general if question in theirs]
    return {
        "total": len(general),
        "compared": len(asked),
        "persona_right": sum(general[question] for question in asked),
        "base_right": sum(theirs[question] for question in asked),
        "lost": [question for question in asked if theirs[question] and not general[question]],
        "gained": [question for question in asked if general[question] and not theirs[question]],
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m persona.evals.baseline REPORT_JSON BASE_NAME")
    print(store(Path(sys.argv[1]), sys.argv[2]))
