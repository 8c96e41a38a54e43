"""How long `make test` takes from a clean clone: the README's test command, timed.

    .venv/bin/python benchmarks/suite_time.py --result docs/suite/make-test.json

Clones this repository's HEAD (committed work only) into a fresh folder, runs `CI=true make
test` there with the environments already built under $PERSONA_HOME (their set-up is timed
apart, in the README's table), and writes the wall time, pytest's own time, the counts of its
summary line, the slowest tests pytest printed (`--durations`), the seconds per test file
among them, and the time of every test module (the suite's own "time per module" section). The whole log goes beside the result (.log). Run nothing else meanwhile: the
suite trains on the same two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s \(.*\) =+$")
# The test id runs to the end of the line: parameters may hold spaces ("[SIGINT twice]").
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>setup|call|teardown)\s+(?P<test>.+?)\s*$")
# tests/suite_order.py's section: "  1059.3 s     4 tests  tests/test_end_to_end.py"
MODULE_TIME = re.compile(r"^\s*(?P<seconds>[\d.]+) s\s+(?P<tests>\d+) tests\s+(?P<module>\S+)$")


def parse(log: str) -> dict:
    """pytest's summary line and its --durations table, from a `make test` log."""
    summary = next((m for m in map(SUMMARY.match, log.splitlines()) if m), None)
    if summary is None:
        raise SystemExit("no pytest summary line in the log: the suite did not finish")
    counts = {word: int(number) for number, word in
              re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)",
                         summary["counts"])}
    slowest = [{"seconds": float(m["seconds"]), "phase": m["phase"], "test": m["test"]}
               for m in map(DURATION.match, log.splitlines()) if m]
    per_file: dict[str, float] = defaultdict(float)
    for item in slowest:
        per_file[item["test"].split("::")[0]] += item["seconds"]
    modules = {m["module"]: {"seconds": float(m["seconds"]), "tests": int(m["tests"])}
               for m in map(MODULE_TIME.match, log.splitlines()) if m}
    return {"pytest_s": float(summary["seconds"]), "counts": counts, "slowest": slowest,
            "slowest_by_file_s": dict(sorted(((f, round(s, 1)) for f, s in per_file.items()),
                                             key=lambda item: -item[1])),
            "by_module": modules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", type=Path, required=True, help="JSON to write (and .log beside)")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="persona-suite-") as scratch:
        clone = Path(scratch) / "persona"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        log_path = args.result.with_suffix(".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with log_path.open("w", encoding="utf-8") as log:
            done = subprocess.run(["make", "test"], cwd=clone, stdout=log,
                                  stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})
        wall = time.monotonic() - began
    text = log_path.read_text(encoding="utf-8", errors="replace")
    # The log names the scratch clone and this machine's home: the result files say REPO and ~.
    text = text.replace(str(clone), "REPO").replace(str(Path.home()), "~")
    log_path.write_text(text, encoding="utf-8")
    result = {"command": "CI=true make test", "commit": commit, "exit": done.returncode,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "machine": platform.machine(),
              "wall_s": round(wall, 1), **parse(text)}
    args.result.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"make test: exit {done.returncode}, {result['counts']}, pytest {result['pytest_s']:.0f} s, "
          f"wall {wall:.0f} s\nresult: {args.result}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
