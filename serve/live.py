"""A live persona server's record: the base it serves, the one chat template its personas share,
the runs folder it loads adapters from, and the personas it serves, by id. One JSON file per
port in the cache (servers/<port>.json), replaced whole: `persona add`, `remove` and `list` read
it to reach the server, and a server started again on that port serves the personas it lists.

What a live server loads is a snapshot of a run's adapter, named by its content
(<runs>/.served/<id>-<digest>/): a retraining may rewrite the run while the old weights are
served, and a replaced persona comes from a new path, so vLLM's prefix cache (keyed by adapter
name and path) never hands it blocks computed with the old weights.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ValidationError

from persona import locks
from persona.errors import PersonaError
from persona.paths import home
from persona.run_folder import RunFolder, read_json, write_json

SNAPSHOTS = ".served"  # inside the runs folder: no card id starts with a dot


class LiveError(PersonaError, RuntimeError):
    """A live server cannot do what was asked; the message says why and what to do."""


class ServedPersona(BaseModel):
    run: str  # the run folder the adapter came from (its manifest says what it is)
    adapter: str  # the snapshot vLLM loaded
    since: str  # when it was loaded


class LiveServer(BaseModel):
    port: int
    base: str  # the cards' base (a preset name, a folder or a hub id)
    base_path: str  # what vLLM loaded
    base_name: str  # the base's served model id
    template: str  # the chat template every persona here shares (no default system prompt)
    max_lora_rank: int
    adapter_root: str  # the runs folder: adapters load from nowhere else
    personas: dict[str, ServedPersona] = {}


def servers_dir() -> Path:
    return home() / "servers"


def record_path(port: int) -> Path:
    return servers_dir() / f"{port}.json"


def template_path(port: int) -> Path:
    """The shared template as a file, for vLLM's --chat-template."""
    return servers_dir() / f"{port}.jinja"


def read(port: int) -> LiveServer | None:
    """The record of the server on this port; None when none was started there."""
    path = record_path(port)
    if not path.is_file():
        return None
    try:
        return LiveServer.model_validate(read_json(path))
    except (ValueError, ValidationError) as error:  # json's errors are ValueErrors
        raise LiveError(f"{path} cannot be read ({str(error).splitlines()[0]}); delete it and "
                        f"start the server again (its added personas are then forgotten)") from None


def write(server: LiveServer) -> None:
    write_json(record_path(server.port), server.model_dump())


@contextmanager
def editing(port: int, job: str) -> Iterator[LiveServer]:
    """The record, changed by one command at a time and written back whole when the block ends
    without an error."""
    servers_dir().mkdir(parents=True, exist_ok=True)

    def refused(holders: str) -> LiveError:
        return LiveError(f"the record of the server on port {port} is being changed by "
                         f"{holders}; try again when it is done")

    with locks.hold(servers_dir() / f"{port}.lock", job, refused):
        server = read(port)
        if server is None:
            raise LiveError(f"no persona server was started on port {port}; start one with "
                            f"`persona serve --adapters CARD,...` or `persona serve --base BASE`")
        yield server
        write(server)


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def snapshot(run: RunFolder, persona_id: str, root: Path) -> Path:
    """A copy of the finished run's adapter under root/.served, named by its content (the same
    weights: the same folder, copied once). The caller holds the run's lock."""
    digest = _digest(run.adapter)
    target = Path(root) / SNAPSHOTS / f"{persona_id}-{digest}"
    if target.is_dir():
        return target
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(run.adapter, partial)
    partial.rename(target)  # whole or not at all
    return target


def release(adapter: Path) -> None:
    """Delete a snapshot that no server's record lists any more."""
    adapter = Path(adapter)
    if adapter.parent.name != SNAPSHOTS:
        return  # not a snapshot: never delete a run's own files
    for path in servers_dir().glob("*.json"):
        try:
            listed = LiveServer.model_validate(read_json(path)).personas.values()
        except (ValueError, ValidationError):
            return  # a record that cannot be read may list it: keep it
        if any(Path(p.adapter) == adapter for p in listed):
            return
    shutil.rmtree(adapter, ignore_errors=True)
