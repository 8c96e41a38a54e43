"""`persona feedback export`: the chat's thumbs-down answers of one persona as eval cases and
training corrections (persona/feedback.py says how each is derived)."""

from __future__ import annotations

from pathlib import Path

from persona.card import load_card
from persona.commands import DEFAULT_CARD, CommandError
from persona.feedback import CASES, Downvote, export, feedback_dir
from persona.run_folder import write_json


def downvotes(url: str, persona_id: str) -> list[Downvote]:
    """The thumbs-down answers of one persona, oldest first, with what each was made from (the
    chat keeps it in the answer's metadata: ui/threads.py)."""
    from sqlalchemy.exc import SQLAlchemyError

    from persona.ui.store import FEEDBACK_ON_ANSWERS, fetch, json_value, run_sync
    from persona.ui.threads import is_answer

    try:
        rows = run_sync(fetch(url, FEEDBACK_ON_ANSWERS))
    except (SQLAlchemyError, OSError) as error:
        raise CommandError(f"cannot read the chat's database: {str(error).splitlines()[0]}; "
                           f"is PERSONA_DB_URL right?") from None
    votes = []
    for row in rows:
        meta = json_value(row["metadata"]) or {}
        if row["value"] != 0 or not is_answer(row) or meta.get("persona_id") != persona_id:
            continue  # a thumbs-up, an error note, another persona's answer
        votes.append(Downvote(step_id=str(row["answerId"]), messages=meta["messages"],
                              answer=row["output"] or "", comment=row["comment"] or ""))
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
    from persona.ui.store import StoreError, database_url

    persona = load_card(card)
    try:
        url = database_url({"PERSONA_DB_URL": db_url} if db_url else None)
    except StoreError as error:
        raise CommandError(str(error)) from None
    cases, corrections = export(persona, downvotes(url, persona.id))
    if not cases:
        print(f"persona: no thumbs-down answer of {persona.id} in the chat's database; "
              f"nothing written")
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
        print(f"  correct: persona train --card {card} --corrections "
              f"{folder / 'corrections.json'} --refine   (a short pass from the trained persona; "
              "--force instead of --refine retrains it from the base)")
