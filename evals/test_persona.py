"""One test per eval category; each fails when its pass rate drops below its threshold and
shows the offending answers."""

import pytest

from evals.cases import Case
from evals.thresholds import THRESHOLDS


@pytest.mark.parametrize("category", sorted(THRESHOLDS))
def test_category(category: str, verdicts: dict[str, dict], cases: list[Case]):
    mine = [case for case in cases if case.category == category]
    if not mine:
        pytest.skip(f"no {category} cases for this card")
    passed = [case for case in mine if verdicts[case.id]["passed"]]
    rate = len(passed) / len(mine)
    failures = "\n".join(
        f"- {case.id}: asked {case.messages[-1]['content']!r}\n"
        + "\n".join(f"    answer {answer['text']!r} -> {'; '.join(answer['problems'])}"
                    for answer in verdicts[case.id]["answers"] if answer["problems"])
        for case in mine if case not in passed)
    assert rate >= THRESHOLDS[category], (
        f"{category}: {len(passed)}/{len(mine)} cases pass ({rate:.0%}), "
        f"threshold {THRESHOLDS[category]:.0%}\n{failures}")
