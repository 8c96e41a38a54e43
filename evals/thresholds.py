"""Minimum pass rate per eval category, and the allowed loss of general skill: the one place to
tighten or relax the suite."""

THRESHOLDS = {
    "identity-zh": 0.9,
    "identity-en": 0.9,
    "creator": 0.8,
    "system-prompt": 0.8,
    "multi-turn": 0.8,
    "adversarial": 0.75,
    "near-miss": 0.5,
    "stability": 0.75,  # each case needs 4 of 5 samples at T=0.7; a 135M base slips on one now and then
    "control": 1.0,  # an introduction in an unrelated answer is never fine
}

# general-skill: the persona may answer at most this share of the general questions fewer right
# than the untuned base. In English, a persona (lingxi) and the base disagree on 10 of 54
# questions, 5 each way: random flips of a 135M model with a spread of about sqrt(10) ~ 3
# questions. 0.10 of 64 (6 questions) is two such spreads, so only a real loss trips it
# (docs/evals.md).
RETENTION_MARGIN = 0.10
