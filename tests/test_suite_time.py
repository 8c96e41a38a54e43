"""benchmarks/suite_time.py reads pytest's own summary and durations out of a `make test` log."""

from __future__ import annotations

import pytest

from benchmarks.suite_time import parse

LOG = """\
tests/test_card.py ........                                              [ 10%]
============================= slowest 25 durations =============================
1059.34s setup    tests/test_end_to_end.py::test_training_produced_a_merged_model
89.74s call     tests/test_end_to_end.py::test_evals_pass_against_the_served_persona
23.04s call     tests/test_serve_load.py::test_malformed_requests_in_the_load_get_4xx[x y]
0.01s teardown tests/test_errors.py::test_cli[persona.errors.PersonaError]
=============================== time per module ================================
  1149.1 s     4 tests  tests/test_end_to_end.py
    23.0 s    12 tests  tests/test_serve_load.py
  1172.1 s  in all
========== 848 passed, 2 deselected, 1 warning in 3301.25s (0:55:01) ===========
"""


def test_the_summary_counts_and_the_slowest_tests_per_file():
    parsed = parse(LOG)
    assert parsed["pytest_s"] == 3301.25
    assert parsed["counts"] == {"passed": 848, "deselected": 2}
    assert [item["phase"] for item in parsed["slowest"]] == ["setup", "call", "call", "teardown"]
    assert parsed["slowest"][2]["test"] == "tests/test_serve_load.py::test_malformed_requests_in_the_load_get_4xx[x y]"
    assert parsed["slowest_by_file_s"] == {"tests/test_end_to_end.py": 1149.1,
                                           "tests/test_serve_load.py": 23.0,
                                           "tests/test_errors.py": 0.0}
    assert parsed["by_module"] == {"tests/test_end_to_end.py": {"seconds": 1149.1, "tests": 4},
                                   "tests/test_serve_load.py": {"seconds": 23.0, "tests": 12}}


def test_a_log_without_a_summary_is_no_result():
    with pytest.raises(SystemExit, match="did not finish"):
        parse("tests/test_card.py ....F\nmake: *** [Makefile:19: test] Interrupted\n")
