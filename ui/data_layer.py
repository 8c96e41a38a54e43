"""Chainlit's own SQLAlchemy data layer on the chat's database (ui/store.py), with what its
queries leave to the database made the same on SQLite and PostgreSQL.

Chainlit binds some values as they come: a thread's tags (a list), a message's modes (a dict).
Neither SQLite nor the JSONB columns take a Python list or dict, and Chainlit's execute_sql
would only log the failure and drop the write; so every list and dict goes as JSON text. On
the way back SQLite hands JSON columns over as text and booleans as 0/1, where Chainlit and
its page expect what PostgreSQL's driver gives: decoded here.
"""

from __future__ import annotations

import json
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer

from persona.ui.store import dialect, json_value

# The threads the sidebar lists at most (Chainlit reads them all to page through them).
THREAD_LIMIT = 500
# Result keys (column names and Chainlit's aliases) holding JSON, and holding booleans.
JSON_KEYS = {"metadata", "tags", "generation", "modes", "playerConfig", "thread_metadata",
             "thread_tags", "step_metadata", "step_tags", "step_generation"}
BOOL_KEYS = {"streaming", "waitForAnswer", "isError", "defaultOpen", "autoCollapse", "autoPlay",
             "step_streaming", "step_waitforanswer", "step_iserror"}


def bindable(value: Any) -> Any:
    """What the drivers accept for a value Chainlit passes: lists and dicts as JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def decoded_row(row: dict[str, Any]) -> dict[str, Any]:
    """A SQLite row as PostgreSQL's driver would give it."""
    out = dict(row)
    for key, value in row.items():
        if key in JSON_KEYS:
            out[key] = json_value(value)
        elif key in BOOL_KEYS and isinstance(value, int) and not isinstance(value, bool):
            out[key] = bool(value)
    return out


class PersonaDataLayer(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemyDataLayer; no file storage (the chat takes no uploads)."""

    def __init__(self, url: str):
        self.sqlite = dialect(url) == "sqlite"
        # SQLite: wait for another connection's write rather than fail at once.
        connect_args = {"timeout": 30} if self.sqlite else {}
        super().__init__(conninfo=url, connect_args=connect_args, user_thread_limit=THREAD_LIMIT)

    async def execute_sql(self, query: str, parameters: dict):
        result = await super().execute_sql(
            query, {key: bindable(value) for key, value in parameters.items()})
        if self.sqlite and isinstance(result, list):
            return [decoded_row(row) for row in result]
        return result
