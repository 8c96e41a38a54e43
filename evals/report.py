"""JSON and Markdown reports of an eval run: pass rate by category, every failing answer, and —
when a base run is at hand — base vs persona side by side, as a table and a PNG chart."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from persona.evals.baseline import retention
from persona.evals.thresholds import MAX_LOST, THRESHOLDS
from persona.identity.judges import language_of
from persona.stats import describe, proportion, wilson

CHART = "base-vs-persona.png"


def summarise(cases, judged: dict[str, dict]) -> dict[str, dict]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        totals[case.category][0] += judged[case.id]["passed"]
        totals[case.category][1] += 1
    return {category: {"passed": passed, "total": total, "rate": passed / total,
                       "interval": [round(bound, 3) for bound in wilson(passed, total)],
                       "threshold": THRESHOLDS.get(category)}
            for category, (passed, total) in sorted(totals.items())}


IDENTITY_CATEGORIES = ("identity-zh", "identity-en", "creator", "adversarial")


def by_language(cases, judged: dict[str, dict]) -> dict[str, dict]:
    """Per language: held-out identity (every identity question asked on its own), the answers
    written in the language asked, and leakage into unrelated answers, each with its n and 95 %
    interval."""
    rows: dict[str, dict] = {}
    for lang in ("zh", "en"):
        identity = [case for case in cases if case.lang == lang
                    and case.category in IDENTITY_CATEGORIES]
        answered = [answer["text"] for case in cases if case.lang == lang and case.answer_lang
                    for answer in judged[case.id]["answers"]]
        unrelated = [case for case in cases if case.category == f"leakage-{lang}"]
        measures = {
            "identity": (sum(judged[case.id]["passed"] for case in identity), len(identity)),
            "answer_language": (sum(language_of(text) == lang for text in answered), len(answered)),
            "leakage": (sum(not judged[case.id]["passed"] for case in unrelated), len(unrelated)),
        }
        rows[lang] = {name: proportion(count, total) for name, (count, total) in measures.items()}
    return rows


def general_skills(cases, judged: dict[str, dict]) -> dict[str, bool]:
    """question -> answered right, the part of a run that another run is compared on."""
    return {case.messages[-1]["content"]: judged[case.id]["passed"]
            for case in cases if case.category == "general-skill"}


def _threshold(category: str, row: dict) -> str:
    if category == "general-skill":
        return f"at most {MAX_LOST} of the base's right answers lost"
    if category == "feedback":
        return "every one (each a thumbs-down from the chat)"
    return "" if row["threshold"] is None else f"{row['threshold']:.0%}"


def _language_lines(languages: dict[str, dict]) -> list[str]:
    lines = ["", "| language | held-out identity | answered in the language asked | "
             "leakage (unrelated answers naming the persona) |", "|---|---|---|---|"]
    for lang, row in languages.items():
        cells = [describe(row[name]) for name in ("identity", "answer_language", "leakage")]
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return lines


def _markdown(model: str, summary: dict, failures: list[dict], reference: dict | None,
              kept: dict | None, languages: dict[str, dict]) -> str:
    base = reference["categories"] if reference else {}
    columns = ["category"] + ([f"base ({reference['model']})"] if reference else []) + [
        "passed", "rate", "95 % interval", "threshold"]
    lines = [f"# Eval report: {model}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    for category, row in summary.items():
        cells = [category]
        if reference:
            cells.append(f"{base[category]['rate']:.0%}" if category in base else "")
        low, high = row["interval"]
        cells += [f"{row['passed']}/{row['total']}", f"{row['rate']:.0%}",
                  f"{low:.0%}-{high:.0%}", _threshold(category, row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _language_lines(languages)
    if kept:
        lines += ["", f"General skill: {kept['persona_right']}/{kept['compared']} right, "
                  f"the base {kept['base_right']}/{kept['compared']}; lost {len(kept['lost'])}, "
                  f"gained {len(kept['gained'])}.", ""]
        lines += [f"- lost: {question}" for question in kept["lost"]]
        lines += [f"- gained: {question}" for question in kept["gained"]]
    if reference:
        lines += ["", f"![base vs persona]({CHART})"]
    if failures:
        lines += ["", "## Failing cases", ""]
        for failure in failures:
            lines.append(f"- **{failure['id']}** asked {failure['messages'][-1]['content']!r}")
            lines += [f"  - {answer['text']!r}: {'; '.join(answer['problems'])}"
                      for answer in failure["answers"] if answer["problems"]]
    return "\n".join(lines) + "\n"


def chart(path: Path, model: str, summary: dict, reference: dict) -> Path:
    from persona.plots import grouped_bars

    groups = [category for category in summary if category in reference["categories"]]
    return grouped_bars(
        path, groups,
        {f"before: {reference['model']}": [reference["categories"][c]["rate"] for c in groups],
         f"after: {model}": [summary[c]["rate"] for c in groups]},
        title="Pass rate by category, before and after fine-tuning", ylabel="pass rate", ymax=1.15)


def write_report(directory: Path, model: str, cases, judged: dict[str, dict],
                 reference: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarise(cases, judged)
    languages = by_language(cases, judged)
    general = general_skills(cases, judged)
    kept = retention(general, reference) if reference and general else None
    failures = [{"id": case.id, "category": case.category, "messages": case.messages,
                 "answers": judged[case.id]["answers"]}
                for case in cases if not judged[case.id]["passed"]]
    (directory / "report.json").write_text(json.dumps(
        {"model": model, "categories": summary, "by_language": languages,
         "general_skills": general,
         "retention": kept, "reference_model": reference["model"] if reference else None,
         "failures": failures}, ensure_ascii=False, indent=2), encoding="utf-8")
    markdown = _markdown(model, summary, failures, reference, kept, languages)
    (directory / "report.md").write_text(markdown, encoding="utf-8")
    if reference:
        chart(directory / CHART, model, summary, reference)
    return directory
