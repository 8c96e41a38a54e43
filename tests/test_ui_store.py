"""The chat's database (ui/store.py): where it is, the schema Chainlit's queries need, and the
migrations, on a real SQLite file and a real PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import stat

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from persona.ui import store
from persona.ui.store import LATEST, MIGRATIONS, StoreError, database_url, migrate, prepare


def run(coroutine):
    return asyncio.run(coroutine)


def query(url: str, sql: str, **params) -> list[tuple]:
    """The rows, each a tuple of its values in column order."""
    return [tuple(row.values()) for row in run(store.fetch(url, sql, **params))]


def execute(url: str, sql: str, **params) -> None:
    run(store.execute(url, sql, **params))


async def _schema(url: str) -> tuple[dict[str, set[str]], set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            def read(sync):
                found = inspect(sync)
                tables = {name: {c["name"] for c in found.get_columns(name)}
                          for name in found.get_table_names()}
                indexes = {i["name"] for name in tables for i in found.get_indexes(name)}
                return tables, indexes
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def schema(url: str) -> tuple[dict[str, set[str]], set[str]]:
    return run(_schema(url))


# -- where ------------------------------------------------------------------------------------
def test_the_default_is_a_sqlite_file_under_the_persona_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    assert database_url({}) == f"sqlite+aiosqlite:///{tmp_path}/chat/threads.db"
    assert database_url({"PERSONA_DB_URL": "  "}) == database_url({})


@pytest.mark.parametrize("given, meant", [
    ("postgresql://u:pw@db:5432/chat", "postgresql+asyncpg://u:pw@db:5432/chat"),
    ("postgres://u:pw@db/chat", "postgresql+asyncpg://u:pw@db/chat"),
    ("postgresql+asyncpg://u:pw@db/chat", "postgresql+asyncpg://u:pw@db/chat"),
    ("sqlite:////srv/chat.db", "sqlite+aiosqlite:////srv/chat.db"),
    ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
])
def test_persona_db_url_gets_the_async_driver(given, meant):
    assert database_url({"PERSONA_DB_URL": given}) == meant


@pytest.mark.parametrize("given, says", [
    ("mysql://u@h/db", "SQLite or PostgreSQL"),
    ("not a url", "not a database URL"),
    ("sqlite://", "no SQLite file"),
    ("sqlite:///:memory:", "no SQLite file"),
])
def test_a_bad_persona_db_url_says_what_to_write(given, says):
    with pytest.raises(StoreError, match=says) as caught:
        database_url({"PERSONA_DB_URL": given})
    assert "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE" in str(caught.value)


def test_messages_never_show_the_password():
    assert store.shown("postgresql+asyncpg://u:s3cret@db/chat") == "postgresql+asyncpg://u:***@db/chat"


def test_an_unreachable_database_is_named_without_its_password():
    from persona.services import free_port

    url = f"postgresql+asyncpg://u:s3cret@127.0.0.1:{free_port()}/chat"
    with pytest.raises(StoreError) as caught:
        prepare(url)
    message = str(caught.value)
    assert "cannot open the chat database" in message and "PERSONA_DB_URL" in message
    assert "s3cret" not in message and "u:***@127.0.0.1" in message


def test_an_unwritable_place_for_the_sqlite_file_says_what_to_change(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="(?s)cannot create the chat database.*PERSONA_HOME"):
        prepare(f"sqlite+aiosqlite:///{tmp_path / 'file' / 'chat' / 'threads.db'}")


def test_the_sqlite_file_is_private(tmp_path):
    path = tmp_path / "home" / "chat" / "threads.db"
    assert prepare(f"sqlite+aiosqlite:///{path}") == LATEST
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- what ----------------------------------------------------------------------------------------
def test_every_table_holds_every_column_chainlit_writes(db_url):
    from chainlit.step import StepDict
    from chainlit.types import Feedback, ThreadDict
    from chainlit.user import PersistedUser

    assert prepare(db_url) == LATEST
    tables, _ = schema(db_url)
    assert {"users", "threads", "steps", "elements", "feedbacks", "schema_version"} <= set(tables)
    # create_step writes every key of a step's dict that is set (feedback is joined, not stored).
    assert set(StepDict.__annotations__) - {"feedback"} <= tables["steps"]
    assert set(Feedback.__dataclass_fields__) <= tables["feedbacks"]
    assert set(ThreadDict.__annotations__) - {"steps", "elements"} <= tables["threads"]
    assert {"id", "identifier", "metadata", "createdAt"} <= tables["users"]
    assert set(PersistedUser.__dataclass_fields__) - {"display_name"} <= tables["users"]
    # What get_all_user_threads and get_element read from elements.
    assert {"id", "threadId", "type", "chainlitKey", "url", "objectKey", "name", "display",
            "size", "language", "page", "forId", "mime", "props", "autoPlay",
            "playerConfig"} <= tables["elements"]
    assert query(db_url, "SELECT version FROM schema_version") == [(LATEST,)]


def test_migrating_again_changes_nothing(db_url):
    assert prepare(db_url) == LATEST
    before = schema(db_url)
    assert prepare(db_url) == LATEST
    assert schema(db_url) == before
    assert query(db_url, "SELECT COUNT(*) FROM schema_version") == [(1,)]


def test_a_database_one_version_behind_is_migrated_and_keeps_its_rows(db_url):
    assert run(migrate(db_url, upto=LATEST - 1)) == LATEST - 1
    _, indexes = schema(db_url)
    assert "steps_thread" not in indexes
    execute(db_url, """INSERT INTO users ("id", "identifier", "metadata", "createdAt") """
                    "VALUES ('u1', 'ada', '{}', '2026-01-01T00:00:00Z')")

    assert prepare(db_url) == LATEST
    _, indexes = schema(db_url)
    assert {"threads_user", "steps_thread", "feedbacks_step", "elements_thread"} <= indexes
    assert query(db_url, "SELECT version FROM schema_version") == [(LATEST,)]
    assert query(db_url, "SELECT identifier FROM users") == [("ada",)]


def test_a_database_newer_than_this_code_is_refused_untouched(db_url):
    prepare(db_url)
    execute(db_url, "UPDATE schema_version SET version = :v", v=LATEST + 1)
    with pytest.raises(StoreError, match=f"(?s)schema version {LATEST + 1}.*update persona"):
        prepare(db_url)
    assert query(db_url, "SELECT version FROM schema_version") == [(LATEST + 1,)]


def test_migrations_are_described_and_fill_both_dialects():
    for migration in MIGRATIONS:
        assert migration.about
        for name in ("sqlite", "postgresql"):
            statements = migration.statements(name)
            assert statements and not any("{" in s for s in statements)
    tables = MIGRATIONS[0].statements("postgresql")
    assert any('"metadata" JSONB' in s for s in tables)
    assert not any("JSONB" in s for s in MIGRATIONS[0].statements("sqlite"))


def test_prepare_works_inside_a_running_event_loop(tmp_path):
    """Chainlit may load the app under its event loop: the migration then runs on its own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'threads.db'}"

    async def main():
        return prepare(url)

    assert run(main()) == LATEST
    assert query(url, "SELECT version FROM schema_version") == [(LATEST,)]
