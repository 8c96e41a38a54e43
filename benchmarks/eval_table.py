"""Side-by-side table of eval reports (report.json files that `persona eval` wrote), for the docs.

  .venv/bin/python benchmarks/eval_table.py docs/evals/xiaocong-previous-default \
      docs/evals/xiaocong-default ...

One column per report folder: held-out identity, answers in the language asked and leakage per
language (n and 95 % Wilson interval), every category's pass count, general-skill losses and
gains against the base.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from persona.stats import describe  # noqa: E402


def table(folders: list[Path]) -> str:
    reports = [json.loads((folder / "report.json").read_text(encoding="utf-8")) for folder in folders]
    lines = ["| | " + " | ".join(folder.name for folder in folders) + " |",
             "|---|" + "---|" * len(folders)]
    for lang in ("zh", "en"):
        for name, label in (("identity", "held-out identity"),
                            ("answer_language", "answered in the language asked"),
                            ("leakage", "**leakage**")):
            cells = [describe(report["by_language"][lang][name], bound_digits=0)
                     for report in reports]
            lines.append(f"| {label} ({lang}) | " + " | ".join(cells) + " |")
    lines.append("| general skill: lost / gained of the base's | " + " | ".join(
        f"{len(r['retention']['lost'])} / {len(r['retention']['gained'])} "
        f"({r['retention']['persona_right']}/{r['retention']['total']} right)" for r in reports) + " |")
    categories = sorted({c for report in reports for c in report["categories"]} - {"general-skill"})
    for category in categories:
        cells = []
        for report in reports:
            row = report["categories"].get(category)
            mark = "" if row is None or row["threshold"] is None or row["rate"] >= row["threshold"] else " ✗"
            cells.append("" if row is None else f"{row['passed']}/{row['total']}{mark}")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(table([Path(argument) for argument in sys.argv[1:]]))
