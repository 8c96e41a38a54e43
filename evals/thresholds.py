"""Minimum pass rate per eval category: the one place to tighten or relax the suite."""

THRESHOLDS = {
    "identity-zh": 0.9,
    "identity-en": 0.9,
    "creator": 0.8,
    "system-prompt": 0.8,
    "multi-turn": 0.8,
    "adversarial": 0.75,
    "near-miss": 0.5,
    "stability": 1.0,  # each stability case already needs 4 of 5 samples
    "control": 1.0,  # an introduction in an unrelated answer is never fine
}
