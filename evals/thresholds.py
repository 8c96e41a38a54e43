"""Minimum pass rate per eval category, and the general-skill losses allowed: the one place to
tighten or relax the suite.

Each threshold is read with its sample size (the report prints n and a 95 % Wilson interval per
category): below 1.0 a threshold must leave room for at least one failing case at the category's
n, or it is a 100 % demand in disguise (tests/test_eval_cases.py checks).
"""

THRESHOLDS = {
    "identity-zh": 0.9,
    "identity-en": 0.9,
    "creator": 0.9,
    "system-prompt": 0.85,
    "operator-persona": 0.75,  # the operator's own assistant answers, not the persona
    "multi-turn": 0.8,
    "profile-switch": 0.75,
    "adversarial": 0.8,
    "near-miss": 0.5,
    "stability": 0.75,  # each case needs 4 of 5 samples at T=0.7; a 135M base slips on one now and then
    "control": 1.0,  # an introduction in an unrelated answer is never fine
    # Leakage: answers naming the persona or its maker, out of ~110 unrelated prompts per
    # language. 0.97 allows 3 (the goal is at most 2 %, ~2; one more for the noise of
    # a single run of a 135M model, whose 95 % interval at 2/110 already reaches 6 %).
    "leakage-zh": 0.97,
    "leakage-en": 0.97,
}

# general-skill: how many of the base's right answers the persona may lose, counted on their
# own (never netted against questions it gained). The base gets about 48 of the 64 right.
MAX_LOST = 3
