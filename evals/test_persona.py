"""One test per eval category; each fails when its pass rate drops below its threshold and
shows the offending answers. General skill is judged against the untuned base, its losses
counted on their own."""

import pytest

from persona.evals.baseline import retention
from persona.evals.cases import Case
from persona.evals.report import general_skills
from persona.evals.thresholds import MAX_LOST, THRESHOLDS


def _answers(case: Case, verdicts: dict[str, dict]) -> str:
    return "\n".join(f"    answer {answer['text']!r} -> {'; '.join(answer['problems'])}"
                     for answer in verdicts[case.id]["answers"] if answer["problems"])


@pytest.mark.parametrize("category", sorted(THRESHOLDS))
def test_category(category: str, verdicts: dict[str, dict], cases: list[Case], asked):
    if not asked(category):
        pytest.skip(f"{category}: not asked (--only)")
    mine = [case for case in cases if case.category == category]
    if not mine:
        pytest.skip(f"no {category} cases for this card")
    passed = [case for case in mine if verdicts[case.id]["passed"]]
    rate = len(passed) / len(mine)
    failures = "\n".join(f"- {case.id}: asked {case.messages[-1]['content']!r}\n"
                         + _answers(case, verdicts) for case in mine if case not in passed)
    assert rate >= THRESHOLDS[category], (
        f"{category}: {len(passed)}/{len(mine)} cases pass ({rate:.0%}), "
        f"threshold {THRESHOLDS[category]:.0%}\n{failures}")


def test_general_skill_retained(verdicts: dict[str, dict], cases: list[Case], reference, asked):
    if not asked("general-skill"):
        pytest.skip("general-skill: not asked (--only)")
    if reference is None:
        pytest.skip("no base run to compare with: pass --reference-report, or run "
                    "`persona eval --compare-base`")
    kept = retention(general_skills(cases, verdicts), reference)
    assert kept["compared"] == kept["total"], (
        f"the base run answered {kept['compared']} of today's {kept['total']} general questions; "
        "record it again (`persona eval --compare-base`, then `python -m persona.evals.baseline`)")
    by_question = {case.messages[-1]["content"]: case for case in cases}
    lost = "\n".join(f"- {question}\n" + _answers(by_question[question], verdicts)
                     for question in kept["lost"])
    assert len(kept["lost"]) <= MAX_LOST, (
        f"general skill: lost {len(kept['lost'])} of the {kept['base_right']} questions the base "
        f"({reference['model']}) gets right, at most {MAX_LOST} allowed (gained "
        f"{len(kept['gained'])}, not counted against them); "
        f"{kept['persona_right']}/{kept['total']} right in all. Lost:\n{lost}")


def test_every_thumbs_down_is_fixed(verdicts: dict[str, dict], cases: list[Case]):
    """The chat's thumbs-down answers (`persona feedback export`): regressions, each must pass."""
    mine = [case for case in cases if case.category == "feedback"]
    if not mine:
        pytest.skip("no feedback cases exported for this card (`persona feedback export`)")
    failing = [case for case in mine if not verdicts[case.id]["passed"]]
    assert not failing, f"{len(failing)}/{len(mine)} thumbs-down answers still wrong:\n" + "\n".join(
        f"- {case.id}: asked {case.messages[-1]['content']!r}\n" + _answers(case, verdicts)
        for case in failing)
