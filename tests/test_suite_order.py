"""tests/suite_order.py: the order `make test` runs in, and its time per module."""

from __future__ import annotations

from types import SimpleNamespace

from suite_order import ModuleTimes, fast_first, is_fast


class _Item:
    def __init__(self, name: str, slow: bool = False, scopes: tuple[str, ...] = ()):
        self.name, self.slow = name, slow
        self._fixtureinfo = SimpleNamespace(name2fixturedefs={
            f"fixture_{index}": [SimpleNamespace(scope=scope)] for index, scope in enumerate(scopes)})

    def get_closest_marker(self, name: str):
        return object() if name == "slow" and self.slow else None


def test_fast_tests_go_first_and_each_group_keeps_its_order():
    items = [_Item("a_slow", slow=True), _Item("a_fast"), _Item("b_fast", scopes=("function", "session")),
             _Item("b_slow", slow=True), _Item("c_fast")]
    fast_first(items)
    assert [item.name for item in items] == ["a_fast", "b_fast", "c_fast", "a_slow", "b_slow"]


def test_a_fast_test_on_a_module_fixture_stays_with_the_slow_ones():
    # its module's fixture is then set up once, for it and the slow tests together
    items = [_Item("m_fast_shared", scopes=("module",)), _Item("m_slow", slow=True, scopes=("module",)),
             _Item("n_fast"), _Item("k_class", scopes=("class",))]
    assert [is_fast(item) for item in items] == [False, False, True, False]
    fast_first(items)
    assert [item.name for item in items] == ["n_fast", "m_fast_shared", "m_slow", "k_class"]


def test_time_per_module_sums_every_phase_and_lists_the_slowest_first():
    times = ModuleTimes()
    for nodeid, seconds in [("tests/test_a.py::one", 1.0), ("tests/test_a.py::one", 0.5),
                            ("tests/test_b.py::two", 30.0), ("tests/test_a.py::three", 2.0)]:
        times.add(SimpleNamespace(nodeid=nodeid, duration=seconds))
    lines: list[str] = []
    reporter = SimpleNamespace(section=lambda title: lines.append(f"== {title}"), write_line=lines.append)
    times.write(reporter)
    assert lines[0] == "== time per module"
    assert lines[1].split() == ["30.0", "s", "1", "tests", "tests/test_b.py"]
    assert lines[2].split() == ["3.5", "s", "2", "tests", "tests/test_a.py"]
    assert lines[3].split() == ["33.5", "s", "in", "all"]
