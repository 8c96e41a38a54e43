"""How `make test` runs its tests: fast ones first, and where the time went, per module.

Fast tests (not marked slow) go first so that a broken unit shows in two minutes, not after the
training; the slow ones follow in collection order. A test that uses a module- or class-scoped
fixture stays with the slow ones, so that its module's fixture is set up once, not once for
each group. Session fixtures (the trained persona, the shared server) are set up by the first
test that asks for them: their minutes count in that test's module.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

SHARED_SCOPES = ("module", "class", "package")


def _waits_on_shared_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(info, "name2fixturedefs", {}) if info is not None else {}
    return any(defs and defs[-1].scope in SHARED_SCOPES for defs in definitions.values())


def is_fast(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is None and not _waits_on_shared_fixture(item)


def fast_first(items: list[pytest.Item]) -> None:
    """Reorder in place: the fast tests, then the others, each group in collection order."""
    items[:] = [item for item in items if is_fast(item)] + [item for item in items if not is_fast(item)]


class ModuleTimes:
    """Seconds per test module (setup, call and teardown of its tests), printed at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)

    def add(self, report: pytest.TestReport) -> None:
        module = report.nodeid.split("::")[0]
        self.seconds[module] += report.duration
        self.tests[module].add(report.nodeid)

    def write(self, reporter) -> None:
        if not self.seconds:
            return
        reporter.section("time per module")
        for module, seconds in sorted(self.seconds.items(), key=lambda row: -row[1]):
            reporter.write_line(f"{seconds:8.1f} s  {len(self.tests[module]):4d} tests  {module}")
        reporter.write_line(f"{sum(self.seconds.values()):8.1f} s  in all")
