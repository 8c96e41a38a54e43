"""benchmarks/time_to_identity.py's seeds: one run per config and seed, and each figure's range
over the seeds, read from the committed runs of the default recipe with seeds 42, 1 and 2."""

from __future__ import annotations

import json

import pytest

from benchmarks.time_to_identity import expand, print_spread, spread
from persona.paths import REPO_ROOT

SEED_RUNS = REPO_ROOT / "docs" / "time_to_identity" / "seeds-2026-12-03" / "results.json"


def test_each_config_runs_once_without_seeds_and_once_per_seed_with_them():
    specs = ["default:1:0.15", "lr1e-3:2:0.5:--lr 1e-3 --repeats 2"]
    assert expand(specs, []) == [("default", 1, 0.15, []),
                                 ("lr1e-3", 2, 0.5, ["--lr", "1e-3", "--repeats", "2"])]
    runs = expand(specs, [42, 7])
    assert [name for name, *_ in runs] == ["default@42", "default@7", "lr1e-3@42", "lr1e-3@7"]
    assert runs[3][3] == ["--lr", "1e-3", "--repeats", "2", "--seed", "7"]


def test_a_config_that_sets_its_own_seed_is_refused_with_seeds():
    with pytest.raises(SystemExit, match="drop --seed"):
        expand(["default:1:0.15:--seed 3"], [42, 1])


def test_the_spread_of_the_default_over_three_seeds(capsys):
    rows = json.loads(SEED_RUNS.read_text(encoding="utf-8"))
    seeds = {"default": "42", "seed-1": "1", "seed-2": "2"}
    for row in rows:
        row["name"] = f"default@{seeds[row['name']]}"
    rows.append({**rows[0], "name": "bfloat16"})  # a run without seeds has no spread
    table = spread(rows)
    assert list(table) == ["default"]
    assert table["default"]["seeds"] == ["42", "1", "2"]
    assert table["default"]["range"] == {"identity zh": [24, 28], "identity en": [28, 30],
                                         "leak zh": [5, 13], "leak en": [1, 5],
                                         "skills lost": [4, 14]}
    assert table["default"]["totals"] == {"identity zh": 31, "identity en": 31, "leak zh": 140,
                                          "leak en": 141}
    print_spread(table)
    assert capsys.readouterr().out == (
        "default over seeds 42,1,2: identity zh 24-28/31, identity en 28-30/31, leak zh 5-13/140, "
        "leak en 1-5/141, skills lost 4-14\n")
