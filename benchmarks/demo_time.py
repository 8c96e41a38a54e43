"""How long a newcomer's first `make demo` takes to print its URLs: the README's demo command, timed.

    .venv/bin/python benchmarks/demo_time.py --result docs/suite/first-demo.json

Clones this repository's HEAD (committed work only) into a fresh folder and runs `make demo`
there with HOME set to a new empty folder, as on a fresh machine: no environments, no pip
cache, no converted base, no runs. Each line the demo prints is stamped with the seconds since
the start; the run stops (Ctrl-C, as a user would) once the banner with the URLs is out, and
the script checks that nothing of it is left running. The result holds the time to the URLs,
each phase read off the demo's own lines (the app environment that make builds, each
environment persona builds, the base's conversion, the pipeline's steps, vLLM, the chat) and
the stamped log beside it (.log). Run nothing else meanwhile: the demo trains on the same two
cores. `--keep-home` keeps this machine's HOME (environments already built) and trains into an
empty runs folder instead: the first run of a card on a machine that has run persona before;
with `--runs DIR` as well, the runs folder is DIR, and a finished run of the card there is
served as it is (`make demo` again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from persona.services import free_port, stop_signals_at_defaults  # noqa: E402

BANNER = re.compile(r"^  .+ \(.+\) is up$")
# The demo's own lines that end a phase, and what the phase is called in the result.
PHASE_ENDS = [
    (re.compile(r"^\S*/persona up "), "app environment (make)"),
    (re.compile(r"^persona: (\w+) environment ready in"), "{0} environment"),
    (re.compile(r"^wrote \S+/models/"), "base conversion"),
    (re.compile(r"^train: (\w+) done in"), "train: {0}"),
    (re.compile(r"^persona: vLLM ready in"), "vLLM start"),
    (BANNER, "chat start, to the banner"),
]
KEY = re.compile(r"sk-[A-Za-z0-9_-]{8,}")


def phases(stamped: list[tuple[float, str]]) -> list[dict]:
    """Each phase's end and length, in the order the demo printed them: a phase runs from the
    end of the one before it, so the lengths add up to the time of the last one."""
    found, previous = [], 0.0
    for at, line in stamped:
        for pattern, name in PHASE_ENDS:
            if match := pattern.match(line):
                found.append({"phase": name.format(*match.groups()), "ends_at_s": round(at, 1),
                              "seconds": round(at - previous, 1)})
                previous = at
                break
    return found


def left_running(session: int, needles: list[bytes]) -> list[str]:
    """The processes still in the demo's session (make and what it started), and any whose
    command line names the scratch folder or one of the demo's ports (vLLM and the chat run in
    sessions of their own)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # the session id is the 6th field of stat
        if int(fields[3]) == session or any(needle in cmdline for needle in needles):
            found.append(proc.name)
    return found


def run_demo(clone: Path, env: dict[str, str], log_path: Path,
             timeout: float) -> tuple[list[tuple[float, str]], float | None, int | None, list[str]]:
    """`make demo` in the clone, every line stamped; stopped with SIGINT once it is up."""
    ports = free_port(), free_port()
    command = ["make", "demo", f"API_PORT={ports[0]}", f"UI_PORT={ports[1]}"]
    began = time.monotonic()
    demo = subprocess.Popen(command, cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True, preexec_fn=stop_signals_at_defaults)

    def signal_group(signum: int) -> None:
        if demo.poll() is None:
            os.killpg(demo.pid, signum)

    # Ctrl-C once, as a user would; whatever still runs two minutes later is killed (the
    # result then says so: no exit code)
    kill = threading.Timer(120, signal_group, [signal.SIGKILL])
    kill.daemon = True
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            signal_group(signal.SIGINT)
            kill.start()

    give_up = threading.Timer(timeout, stop)
    give_up.daemon = True
    give_up.start()
    stamped, up_at = [], None
    with log_path.open("w", encoding="utf-8") as log:
        for raw in demo.stdout:
            at = time.monotonic() - began
            line = raw.rstrip("\n")
            stamped.append((at, line))
            log.write(f"[{at:7.1f} s] {line}\n")
            log.flush()
            if up_at is None and BANNER.match(line):
                up_at = at
            elif up_at is not None and line.startswith("==="):
                stop()  # the banner is out
    give_up.cancel()
    code = demo.wait()
    kill.cancel()
    time.sleep(2)  # let the killed group's last processes be reaped
    left = left_running(demo.pid, [str(clone.parent).encode()]
                        + [f"--port\0{port}\0".encode() for port in ports])
    for pid in left:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass  # gone meanwhile
    return stamped, up_at, None if code == -signal.SIGKILL else code, left


def sanitise(text: str, names: dict[Path, str]) -> str:
    """The log names the scratch folders, the home and the generated key: each by its role."""
    for path, name in names.items():
        text = text.replace(str(path), name)
    return KEY.sub("sk-…", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", type=Path, required=True, help="JSON to write (and .log beside)")
    parser.add_argument("--keep-home", action="store_true",
                        help="this machine's HOME and environments; only the runs folder is new")
    parser.add_argument("--runs", type=Path, help="with --keep-home: this runs folder")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many s")
    args = parser.parse_args(argv)
    if args.runs and not args.keep_home:
        parser.error("--runs needs --keep-home: a fresh home has no runs")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    scratch = Path(tempfile.mkdtemp(prefix="persona-demo-"))
    try:
        clone, home = scratch / "persona", scratch / "home"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        # The machine's pip settings stay (where its wheels lie); persona's own do not.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PERSONA_", "VIRTUAL_ENV"))}
        runs = (args.runs or scratch / "runs").resolve()
        if args.keep_home:
            home = Path.home()
            env["PERSONA_RUNS_DIR"] = str(runs)
        else:
            home.mkdir()
            env["HOME"] = str(home)
        log_path = args.result.with_suffix(".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stamped, up_at, code, left = run_demo(clone, env, log_path, args.timeout)
        log_path.write_text(sanitise(log_path.read_text(encoding="utf-8"), {
            runs: "RUNS", clone: "REPO", home: "HOME", Path.home(): "~"}), encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    found = phases(stamped)
    home_was = ("empty (a fresh machine)" if not args.keep_home else
                "this machine's (environments built), " + ("the runs folder given" if args.runs
                                                           else "an empty runs folder"))
    result = {"command": "make demo", "home": home_was, "commit": commit,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "machine": platform.machine(),
              "to_urls_s": None if up_at is None else round(up_at, 1),
              # from `persona up` on (the app environment is the first phase): what a second
              # `make demo` in the same clone takes
              "up_to_urls_s": None if up_at is None else round(up_at - found[0]["ends_at_s"], 1),
              "phases": found, "exit_after_ctrl_c": code, "left_running": left}
    args.result.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for phase in result["phases"]:
        print(f"{phase['seconds']:8.1f} s  {phase['phase']}")
    print(f"make demo: URLs after {result['to_urls_s']} s, exit {code} after Ctrl-C, "
          f"{len(left)} processes left\nresult: {args.result}")
    return 0 if up_at is not None and not left else 1


if __name__ == "__main__":
    sys.exit(main())
