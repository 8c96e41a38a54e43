"""Locks a job holds for its whole length: an flock on a file, in which each holder writes who it
is (pid, job, since when, command) so that a refused job can name it.

Exclusive for a job that writes (a training, a merge, a dataset, an environment's build); shared
for one that reads and must not have the files replaced or deleted under it (a server, the
evals, a child running from an environment): shared holders run together, never beside an
exclusive one. Nobody waits: a job that cannot have the lock fails at once, naming the holders.
flock ends with the holder's process, so a lock file left behind by a killed job blocks nothing;
the descriptor is not inherited by the holder's children.

Stdlib only (the training environment imports it through the run folder).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from persona import clock


@contextmanager
def hold(path: Path, job: str, refused: Callable[[str], Exception], *,
         shared: bool = False) -> Iterator[None]:
    """Hold the lock at `path` for one job; `refused(holders)` is raised, at once, when another
    job holds it in a way that excludes this one."""
    try:
        # O_APPEND: shared holders add their line beside the others'; os.open's descriptor is
        # not inherited (a child that outlives this process never keeps the lock)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as error:
        if shared and error.errno == errno.EROFS:  # nobody can write there: nothing to fear
            yield
            return
        raise
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise refused(holders(fd)) from None
        if not shared:
            os.ftruncate(fd, 0)  # the only holder: the lines of earlier ones go
        os.write(fd, (json.dumps(_record(job)) + "\n").encode())
        yield
    finally:
        os.close(fd)


def _record(job: str) -> dict:
    argv = getattr(sys, "orig_argv", sys.argv)  # with `-m module`, as it was typed
    return {"pid": os.getpid(), "job": job, "command": shlex.join([Path(argv[0]).name, *argv[1:]]),
            "since": clock.now()}


def holders(fd: int) -> str:
    """The holders the lock file names that still run ('another job' while the one holding it
    is still writing its line)."""
    try:
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")
    except OSError:
        return "another job"
    found: dict[int, str] = {}
    for line in text.splitlines():
        try:
            holder = json.loads(line)
            pid, job, since, command = (holder[k] for k in ("pid", "job", "since", "command"))
        except (ValueError, TypeError, KeyError):
            continue
        if isinstance(pid, int) and _running(pid):
            command = command if len(command) <= 300 else command[:300] + " ..."
            found[pid] = f"pid {pid} ({job} since {since}: {command})"
    return " and ".join(list(found.values())[-3:]) or "another job"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
