"""Where the chat keeps its threads, and the tables Chainlit's SQLAlchemy data layer writes.

SQLite at <persona home>/chat/threads.db unless PERSONA_DB_URL names another database: a file
(sqlite+aiosqlite:///PATH) or PostgreSQL (postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB).
Chainlit creates no schema, so the project does: MIGRATIONS, applied in order when the UI
starts, the version reached kept in the table schema_version (one row). Quoted camelCase
column names are Chainlit's: its queries name them so. No Chainlit import here.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from persona.errors import PersonaError
from persona.paths import home

DB_URL_ENV = "PERSONA_DB_URL"
SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
# The drivers a URL may name, and the async one each stands for.
DRIVERS = {
    "sqlite": SQLITE_DRIVER, SQLITE_DRIVER: SQLITE_DRIVER,
    "postgresql": POSTGRES_DRIVER, "postgres": POSTGRES_DRIVER, POSTGRES_DRIVER: POSTGRES_DRIVER,
}
URL_FORMS = ("sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE")
# Two UIs starting on one PostgreSQL database migrate one after the other (an advisory lock).
MIGRATION_LOCK = 7_370_001


class StoreError(PersonaError, RuntimeError):
    """The chat's database is misnamed, unreachable, or newer than this code."""


def default_path() -> Path:
    return home() / "chat" / "threads.db"


def database_url(env: Mapping[str, str] | None = None) -> str:
    """PERSONA_DB_URL with its async driver named, or the default SQLite file."""
    env = os.environ if env is None else env
    raw = env.get(DB_URL_ENV, "").strip()
    if not raw:
        return f"{SQLITE_DRIVER}:///{default_path()}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise StoreError(f"{DB_URL_ENV} is not a database URL", f"use {URL_FORMS}") from None
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        raise StoreError(f"{DB_URL_ENV} names {url.drivername!r}: the chat stores threads in "
                         "SQLite or PostgreSQL", f"use {URL_FORMS}")
    if driver == SQLITE_DRIVER and (not url.database or url.database == ":memory:"):
        raise StoreError(f"{DB_URL_ENV} names no SQLite file (an in-memory database would be "
                         "empty again at every start)", f"use {URL_FORMS}")
    return url.set(drivername=driver).render_as_string(hide_password=False)


def shown(url: str | URL) -> str:
    """The URL with its password masked: for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def dialect(url: str) -> str:
    """'sqlite' or 'postgresql'."""
    return make_url(url).get_backend_name()


# -- the schema ------------------------------------------------------------------------------
# {json}: what holds Chainlit's JSON values (metadata, tags, generation, modes, props): JSONB on
# PostgreSQL, TEXT on SQLite. Chainlit binds them as JSON text (ui/data_layer.py makes sure of
# that for lists and dicts too). Ids are TEXT: Chainlit hands them over as strings.
TABLES = """
CREATE TABLE IF NOT EXISTS users (
    "id" TEXT PRIMARY KEY,
    "identifier" TEXT NOT NULL UNIQUE,
    "metadata" {json} NOT NULL,
    "createdAt" TEXT
);
CREATE TABLE IF NOT EXISTS threads (
    "id" TEXT PRIMARY KEY,
    "createdAt" TEXT,
    "name" TEXT,
    "userId" TEXT REFERENCES users ("id") ON DELETE CASCADE,
    "userIdentifier" TEXT,
    "tags" {json},
    "metadata" {json}
);
CREATE TABLE IF NOT EXISTS steps (
    "id" TEXT PRIMARY KEY,
    "name" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "threadId" TEXT NOT NULL REFERENCES threads ("id") ON DELETE CASCADE,
    "parentId" TEXT,
    "command" TEXT,
    "modes" {json},
    "streaming" BOOLEAN NOT NULL,
    "waitForAnswer" BOOLEAN,
    "isError" BOOLEAN,
    "metadata" {json},
    "tags" {json},
    "input" TEXT,
    "output" TEXT,
    "createdAt" TEXT,
    "start" TEXT,
    "end" TEXT,
    "generation" {json},
    "showInput" TEXT,
    "defaultOpen" BOOLEAN,
    "autoCollapse" BOOLEAN,
    "language" TEXT,
    "icon" TEXT,
    "indent" INTEGER
);
CREATE TABLE IF NOT EXISTS elements (
    "id" TEXT PRIMARY KEY,
    "threadId" TEXT REFERENCES threads ("id") ON DELETE CASCADE,
    "type" TEXT,
    "url" TEXT,
    "chainlitKey" TEXT,
    "name" TEXT NOT NULL,
    "display" TEXT,
    "objectKey" TEXT,
    "size" TEXT,
    "page" INTEGER,
    "language" TEXT,
    "forId" TEXT,
    "mime" TEXT,
    "props" {json},
    "autoPlay" BOOLEAN,
    "playerConfig" {json}
);
CREATE TABLE IF NOT EXISTS feedbacks (
    "id" TEXT PRIMARY KEY,
    "forId" TEXT NOT NULL,
    "threadId" TEXT NOT NULL REFERENCES threads ("id") ON DELETE CASCADE,
    "value" INTEGER NOT NULL,
    "comment" TEXT
);
"""

# What the sidebar and the feedback export look rows up by.
INDEXES = """
CREATE INDEX IF NOT EXISTS threads_user ON threads ("userId");
CREATE INDEX IF NOT EXISTS steps_thread ON steps ("threadId", "createdAt");
CREATE INDEX IF NOT EXISTS feedbacks_step ON feedbacks ("forId");
CREATE INDEX IF NOT EXISTS elements_thread ON elements ("threadId");
"""

JSON_TYPE = {"sqlite": "TEXT", "postgresql": "JSONB"}


@dataclass(frozen=True)
class Migration:
    """One step from version N-1 to N: SQL statements with {json} for the JSON type."""

    about: str
    sql: str

    def statements(self, dialect_name: str) -> list[str]:
        filled = self.sql.format(json=JSON_TYPE[dialect_name])
        return [part.strip() for part in filled.split(";") if part.strip()]


# Append only: a database at version N has run MIGRATIONS[:N].
MIGRATIONS = [
    Migration("Chainlit's tables: users, threads, steps, elements, feedbacks", TABLES),
    Migration("indexes for the thread list, a thread's steps and a step's feedback", INDEXES),
]
LATEST = len(MIGRATIONS)


async def _current_version(connection: AsyncConnection) -> int:
    await connection.execute(text("CREATE TABLE IF NOT EXISTS schema_version "
                                  "(version INTEGER NOT NULL)"))
    found = (await connection.execute(text("SELECT MAX(version) FROM schema_version"))).scalar()
    return int(found or 0)


async def migrate(url: str, upto: int = LATEST) -> int:
    """Create or bring the database's tables to version `upto` (default: the latest); the
    version it is at after. A database newer than this code is refused, untouched."""
    name = dialect(url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            if name == "postgresql":
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                         {"key": MIGRATION_LOCK})
            current = await _current_version(connection)
            if current > LATEST:
                raise StoreError(
                    f"the chat database {shown(url)} is at schema version {current}, newer than "
                    f"this persona knows ({LATEST})",
                    f"update persona, or point {DB_URL_ENV} at another database")
            for migration in MIGRATIONS[current:upto]:
                for statement in migration.statements(name):
                    await connection.execute(text(statement))
            if upto > current:
                await connection.execute(text("DELETE FROM schema_version"))
                await connection.execute(text("INSERT INTO schema_version (version) VALUES (:v)"),
                                         {"v": upto})
            version = max(current, upto)
        if name == "sqlite":
            # Readers (the thread list) go on while an answer is written. Outside a transaction:
            # SQLite refuses to switch inside one.
            async with engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        return version
    except (DBAPIError, OSError, SQLAlchemyError) as error:
        raise StoreError(f"cannot open the chat database {shown(url)}: {_reason(error)}",
                         f"check {DB_URL_ENV} (or unset it for the SQLite file under "
                         f"{default_path().parent})") from error
    finally:
        await engine.dispose()


def _reason(error: BaseException) -> str:
    """The driver's own error in one line (SQLAlchemy's wrapper adds the statement)."""
    inner = getattr(error, "orig", None) or error
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__


async def fetch(url: str, sql: str, **params) -> list[dict]:
    """The rows one query returns, each a dict of its columns."""
    return await _statement(url, sql, params, commit=False)


async def execute(url: str, sql: str, **params) -> None:
    """One statement that changes the database, committed at once."""
    await _statement(url, sql, params, commit=True)


async def _statement(url: str, sql: str, params: dict[str, Any], commit: bool) -> list[dict]:
    """One statement on an engine of its own; the rows it returns, if any."""
    engine = create_async_engine(url)
    try:
        async with (engine.begin() if commit else engine.connect()) as connection:
            result = await connection.execute(text(sql), params)
            return [dict(row) for row in result.mappings()] if result.returns_rows else []
    finally:
        await engine.dispose()


def run_sync(coroutine):
    """Run a coroutine to its end from sync code, even under a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict[str, Any] = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name="persona-store-migrate")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def prepare(url: str) -> int:
    """Make the database ready for the chat (the SQLite file's folder private to this user,
    the tables migrated); its schema version."""
    if dialect(url) == "sqlite":
        path = Path(make_url(url).database).expanduser()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)  # conversations are private
        except OSError as error:
            raise StoreError(f"cannot create the chat database {path}: {error.strerror}",
                             f"set PERSONA_HOME, or {DB_URL_ENV}, to a writable place") from error
    return run_sync(migrate(url))


# Each feedback with the answer it rates. The page's thumbs rate Chainlit's `on_message` run
# step (feedbacks."forId"), whose child is the answer (steps."parentId"); a rating put on the
# message itself is matched too. A run may also hold an error note: the answer is the one whose
# metadata records its request (ui/threads.py, is_answer).
FEEDBACK_ON_ANSWERS = """
SELECT f."id" AS "feedbackId", f."value", f."comment", f."threadId", t."userIdentifier",
       a."id" AS "answerId", a."type", a."isError", a."output", a."metadata", a."createdAt"
FROM feedbacks f
JOIN threads t ON t."id" = f."threadId"
JOIN steps a ON a."threadId" = f."threadId" AND a."type" = 'assistant_message'
             AND (a."parentId" = f."forId" OR a."id" = f."forId")
ORDER BY a."createdAt"
"""


def json_value(raw: Any) -> Any:
    """A JSON column as Python: PostgreSQL's driver decodes JSONB, SQLite hands back the text."""
    if isinstance(raw, (str, bytes)):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
