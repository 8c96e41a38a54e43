"""A throw-away PostgreSQL server for the tests: Debian's binaries, initdb in a temporary folder,
the server on a free loopback port with its unix socket in that folder, stopped (and the folder
removed) after.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (else
`nobody`), through setpriv, in a folder that user owns. Trust authentication, loopback only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from persona.services import free_port, spawn, stop, tail

SUPERUSER = "persona"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (PERSONA_PG_BIN overrides), or None."""
    chosen = os.environ.get("PERSONA_PG_BIN")
    if chosen:
        return Path(chosen) if (Path(chosen) / "initdb").exists() else None
    versions = [Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    versions.sort(key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


MISSING = ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
           "apt-get install postgresql, as `make test` does")


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The prefix that drops root, and the user it drops to (none when not root)."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                "--pdeathsig", "SIGTERM", "--"], user
    raise RuntimeError("running as root and neither `postgres` nor `nobody` exists")


class PostgresServer:
    """start() ... url(database) ... stop(); or as a context manager."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="persona-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = self.root / "server.log"

    def _command(self, tool: str, *args: str) -> list[str]:
        prefix, _ = _run_as()
        return [*prefix, str(self.bin_dir / tool), *args]

    def start(self, timeout_s: float = 60.0) -> "PostgresServer":
        _, user = _run_as()
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
        data = self.root / "data"
        env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        subprocess.run(self._command("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust",
                                     "-E", "UTF8", "--no-sync"),
                       env=env, check=True, capture_output=True, cwd=self.root)
        self.process = spawn(self._command(
            "postgres", "-D", str(data), "-p", str(self.port), "-k", str(self.root),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"), env, self.log, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start; {self.log}:\n{tail(self.log)}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        probe = subprocess.run([str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port), "-U", SUPERUSER], capture_output=True)
        return probe.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        subprocess.run([str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", SUPERUSER, name], check=True, capture_output=True)
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
