"""JSON and Markdown reports of an eval run: pass rate by category and every failing answer."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from evals.thresholds import THRESHOLDS


def summarise(cases, judged: dict[str, dict]) -> dict[str, dict]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        totals[case.category][0] += judged[case.id]["passed"]
        totals[case.category][1] += 1
    return {category: {"passed": passed, "total": total, "rate": passed / total,
                       "threshold": THRESHOLDS.get(category)}
            for category, (passed, total) in sorted(totals.items())}


def write_report(directory: Path, model: str, cases, judged: dict[str, dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarise(cases, judged)
    failures = [{"id": case.id, "category": case.category, "messages": case.messages,
                 "answers": judged[case.id]["answers"]}
                for case in cases if not judged[case.id]["passed"]]
    (directory / "report.json").write_text(json.dumps(
        {"model": model, "categories": summary, "failures": failures}, ensure_ascii=False, indent=2),
        encoding="utf-8")
    lines = [f"# Eval report: {model}", "", "| category | passed | rate | threshold |",
             "|---|---|---|---|"]
    for category, row in summary.items():
        threshold = "" if row["threshold"] is None else f"{row['threshold']:.0%}"
        lines.append(f"| {category} | {row['passed']}/{row['total']} | {row['rate']:.0%} | {threshold} |")
    if failures:
        lines += ["", "## Failing cases", ""]
        for failure in failures:
            lines.append(f"- **{failure['id']}** asked {failure['messages'][-1]['content']!r}")
            lines += [f"  - {answer['text']!r}: {'; '.join(answer['problems'])}"
                      for answer in failure["answers"] if answer["problems"]]
    (directory / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory
