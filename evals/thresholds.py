"""Minimum pass rate per eval category, and the general-skill losses allowed: the one place to
tighten or relax the suite.

Each threshold is read with its sample size (the report prints n and a 95 % Wilson interval per
category): below 1.0 a threshold must leave room for at least one failing case at the category's
n, or it is a 100 % demand in disguise (tests/test_eval_cases.py checks).

These gate at the level today's default recipe measures on the example cards
(docs/evals/xiaocong-default, lingxi-default, moyan-default), with room for the noise of one
run: they catch a regression, they do not claim the goals. The goals
(leakage at most 2 % per language, at most 3 general answers lost, operator-defined assistants
obeyed) are not met yet; docs/evals.md has the figures.
"""

THRESHOLDS = {
    "identity-zh": 0.85,  # 14 questions per language: allows 2
    "identity-en": 0.85,
    "creator": 0.8,
    "system-prompt": 0.8,
    "multi-turn": 0.8,
    "profile-switch": 0.75,
    "adversarial": 0.8,
    "near-miss": 0.5,
    # 40 seeded samples at T=0.7 (5 each of 8 held-out questions), pooled: a per-question rule
    # (4 of 5) on 8 questions swung between 3 and 6 of 8 from one unseeded run to the next
    "stability": 0.7,
    "control": 1.0,  # an introduction in one of these six plain questions is never fine
    # Leakage: the share of the 121 / 120 unrelated answers that do not name the persona. Today's
    # default leaks into 9 % (xiaocong) and 19 % (lingxi) of the Chinese ones, the recipe before
    # it 23 % (xiaocong), the one before that 40 %; 0.78 allows 26 and fails both earlier ones.
    # English: 2-4 %; 0.93 allows 8.
    "leakage-zh": 0.78,
    "leakage-en": 0.93,
    # operator-persona is reported, not gated: no recipe tried obeys an operator-defined
    # assistant reliably yet (7 of 24 at best).
}

# general-skill: how many of the base's right answers the persona may lose, counted on their
# own (never netted against questions it gained). Today's default loses 9 (xiaocong) and 14
# (lingxi) of the base's 48; the recipe before it lost 12 (xiaocong). 15 lets the example cards
# pass; the goal (3) is not met.
MAX_LOST = 15
