"""Minimum pass rate per eval category: the one place to tighten or relax the suite."""

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
