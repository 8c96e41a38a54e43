"""`persona feedback export`: the chat's thumbs-down answers of one persona as eval cases and
training corrections (persona/feedback.py says how each is derived)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from persona.card import load_card
from persona.commands import DEFAULT_CARD, CommandError
from persona.feedback import CASES, Downvote, export, feedback_dir
from persona.paths import chat_db_url
from persona.run_folder import write_json

# Chainlit's tables: a feedback row points at the answer's step, whose metadata the chat fills
# with the persona, the model and the messages sent (ui/app.py).
DOWNVOTES = """SELECT f."forId" AS step_id, f."comment" AS comment, s."output" AS answer,
                      s."metadata" AS metadata
               FROM feedbacks f JOIN steps s ON s."id" = f."forId"
               WHERE f."value" = 0"""


async def _rows(url: str) -> list[dict]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return [dict(row) for row in (await connection.execute(text(DOWNVOTES))).mappings()]
    finally:
        await engine.dispose()


def downvotes(url: str, persona_id: str) -> list[Downvote]:
    """The thumbs-down answers of one persona, oldest first as stored."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        rows = asyncio.run(_rows(url))
    except (SQLAlchemyError, OSError) as error:
        raise CommandError(f"cannot read the chat's database ({url}): "
                           f"{str(error).splitlines()[0]}; is PERSONA_DB_URL right?") from None
    votes = []
    for row in rows:
        meta = row["metadata"]
        meta = json.loads(meta) if isinstance(meta, str) and meta else meta or {}
        if meta.get("persona_id") != persona_id or not meta.get("messages"):
            continue  # another persona's answer, or one from before answers kept their messages
        votes.append(Downvote(step_id=str(row["step_id"]), messages=meta["messages"],
                              answer=row["answer"] or "", comment=row["comment"] or ""))
    return votes


def feedback(action: str, card: Path = DEFAULT_CARD, db_url: str | None = None,
             out: Path | None = None) -> None:
    """Turn the chat's thumbs-down answers of a persona into eval cases and training corrections.

    Args:
        action: export
        card: persona card YAML
        db_url: the chat's database (default: PERSONA_DB_URL, else SQLite in the cache)
        out: where cases.json and corrections.json go (default: the cache's feedback/<id>/, where `pytest evals/` finds them)
    """
    if action != "export":
        raise CommandError(f"feedback {action!r}: the one action is `persona feedback export`")
    persona = load_card(card)
    url = db_url or chat_db_url()
    cases, corrections = export(persona, downvotes(url, persona.id))
    if not cases:
        print(f"persona: no thumbs-down answer of {persona.id} in {url}; nothing written")
        return
    folder = Path(out) if out else feedback_dir(persona.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cases.json").write_bytes(CASES.dump_json(cases, indent=1))
    print(f"persona: {len(cases)} eval cases in {folder / 'cases.json'}")
    if corrections:
        write_json(folder / "corrections.json", corrections)
        print(f"persona: {len(corrections)} corrections in {folder / 'corrections.json'}")
    print(f"  check:   persona eval --card {card}" + (f"   (PERSONA_FEEDBACK_CASES="
                                                       f"{folder / 'cases.json'})" if out else ""))
    if corrections:
        print(f"  retrain: persona train --card {card} --corrections "
              f"{folder / 'corrections.json'} --force")
