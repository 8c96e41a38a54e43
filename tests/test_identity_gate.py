"""benchmarks/identity_gate.py's probe: the recall it reports for a threshold read off the
yardstick, and a probe that must find a direction planted in random hidden states."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.identity_gate import probe_part, recall_at_most_flagged


def test_recall_counts_identity_scores_above_the_unrelated_ones_let_through():
    unrelated = [0.9, 0.1, 0.8, 0.2, 0.7]
    identity = [0.95, 0.75, 0.72, 0.5]
    assert recall_at_most_flagged(identity, unrelated, 0) == 1   # above 0.9
    assert recall_at_most_flagged(identity, unrelated, 2) == 3   # above 0.7: 0.9 and 0.8 pass
    assert recall_at_most_flagged(identity, unrelated, 4) == 4


def test_the_probe_finds_a_planted_direction_on_one_layer_only():
    rng = np.random.default_rng(0)
    questions = {kind: [(lang, f"{kind} {i}") for i in range(n) for lang in ("zh", "en")]
                 for kind, n in (("identity", 30), ("other", 90), ("heldout", 10),
                                 ("unrelated", 40))}
    is_identity = np.array([kind in ("identity", "heldout")
                            for kind, items in questions.items() for _ in items])
    states = rng.normal(size=(2, len(is_identity), 16))
    states[1, is_identity, 3] += 6.0  # layer 1 carries the answer, layer 0 is noise
    rows = {(r["layer"], r["lang"]): r for r in probe_part(states, questions)}
    for lang in ("zh", "en"):
        planted = rows[(1, lang)]
        assert (planted["heldout"], planted["unrelated"]) == (10, 40)
        assert planted["recalled_at_0.5"] == 10 and planted["flagged_at_0.5"] <= 1
        assert planted["recalled_flagging_at_most_2"] == 10
        assert rows[(0, lang)]["recalled_flagging_at_most_2"] < 8
    assert json.loads(json.dumps(rows[(1, "zh")])) == rows[(1, "zh")]  # the result file's rows
