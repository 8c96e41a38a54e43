"""Personas on a live server: `persona serve --adapters/--base` starts vLLM with run-time LoRA
loading, and `persona add`, `remove` and `list` change and show what it serves, without a
restart. The server's record (persona.serve.live) lists what it serves and outlives it: a
server started again on the same port serves the same personas."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from persona import base_models, clock, commands
from persona.card import PersonaCard, load_card
from persona.commands import CommandError
from persona.paths import runs_dir
from persona.run_folder import RunFolder, RunFolderError, check_request

if TYPE_CHECKING:
    from persona.serve import live
from persona.services import Children, api_key, ensure_free

DEFAULT_SERVER = "http://127.0.0.1:8000/v1"


def _port(server: str) -> int:
    parts = urllib.parse.urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(f"--server {server!r}: give the API's URL, like {DEFAULT_SERVER}")
    return parts.port or (443 if parts.scheme == "https" else 80)


def _key() -> str:
    key = os.environ.get("PERSONA_API_KEY")
    if not key:
        raise CommandError("set PERSONA_API_KEY to the server's key (the one you chose, or the "
                           "one it printed when it started)")
    return key


def _snapshot(run: RunFolder, persona: PersonaCard, root: Path) -> Path:
    """The finished run's adapter, copied where the server loads from; the run is held shared
    meanwhile (a retraining is refused while the copy is taken, and the copy while it runs)."""
    from persona.serve import live

    run.claim(persona.id)
    with run.lock("serve", shared=True):
        if not run.finished():
            raise RunFolderError(f"{run.root} is not a finished run; train it again")
        check_request(run, persona)
        return live.snapshot(run, persona.id, root)


def _base_template(base: str) -> str:
    """The template of a base with no persona yet: the personas' ChatML with no default system
    prompt, opened by the BOS token training puts first (InternLM2's `<s>`; none for ChatML
    bases); a persona trained otherwise is refused by `add`, which compares templates."""
    from persona.train.chat_template import chatml_template

    return chatml_template(None, "<s>" if base_models.prompt_template(base) == "internlm2_chat"
                           else "")


def serve_live(cards: list[Path], base: str | None, port: int, host: str, compile: bool,
               tensor_parallel: int) -> None:
    """One vLLM server for the base, each persona a LoRA adapter routed by model name; the
    personas served on this port before come back, and more can be added while it runs."""
    from persona.serve import live
    from persona.serve.adapters import (AdapterError, adapter_rank, check_cards, plan,
                                        served_base_name, served_rank)

    personas = [load_card(card) for card in cards]
    if not personas and not base:
        raise CommandError("no card given; pass --adapters cards/a.yaml,cards/b.yaml or --base BASE")
    # Before anything is trained or written: the record of a server running there stays its own.
    ensure_free(host, port, "--port")
    base = base or personas[0].base
    try:
        if personas:
            check_cards(personas)  # before training any of them
        if wrong := [p.id for p in personas if p.base != base]:
            raise AdapterError(f"--base {base}, but {', '.join(wrong)} name another base")
        for persona in personas:  # nor any of them trained from another card
            if (run := commands._run_folder(persona, None)).finished():
                check_request(run, persona)
        runs = [RunFolder(commands.train(card)) for card in cards]
        base_path = base_models.resolve(base)
        template = live.template_path(port)
        served = plan(personas, runs, base_path, template) if runs else None
        earlier = live.read(port)
    except (AdapterError, live.LiveError) as error:
        raise CommandError(str(error)) from None
    if served is None:  # no card given: the template this port served the base with, or a new one
        template.parent.mkdir(parents=True, exist_ok=True)
        template.write_text(earlier.template if earlier and earlier.base == base
                            else _base_template(base), encoding="utf-8")
    text = template.read_text(encoding="utf-8")
    root = runs_dir()
    entries = {p.id: live.ServedPersona(run=str(run.root), adapter=str(_snapshot(run, p, root)),
                                        since=clock.now()) for p, run in zip(personas, runs)}
    entries.update(_served_before(earlier, base, text, entries))
    try:
        rank = served_rank(max([16, *(adapter_rank(Path(e.adapter)) for e in entries.values())]))
    except AdapterError as error:
        raise CommandError(str(error)) from None
    # Named after the personas returning from the record too: the base's id must be none of them.
    record = live.LiveServer(port=port, base=base, base_path=str(base_path),
                             base_name=served_base_name(base_path, entries),
                             template=text, max_lora_rank=rank, adapter_root=str(root),
                             personas=entries)
    live.write(record)
    key = api_key()
    names = tuple((pid, Path(e.adapter)) for pid, e in record.personas.items())
    with Children() as children:
        url = commands._start_api(personas[0] if personas else None, Path(str(base_path)), host,
                                  port, key, children, compile, tensor_parallel, names, template,
                                  record.base_name, record.max_lora_rank, adapter_root=root,
                                  base=base)
        _announce(url, key, record)
        commands._wait_forever(children)


def _served_before(earlier, base: str, template: str, given: dict) -> dict:
    """The personas the port's record lists beside the cards given now, where they still fit."""
    kept = {}
    for pid, entry in (earlier.personas.items() if earlier else ()):
        if pid in given:
            continue
        if earlier.base != base or earlier.template != template or not Path(entry.adapter).is_dir():
            print(f"persona: {pid} was served on port {earlier.port} before, but its adapter is "
                  f"gone or does not fit this server: not served (`persona add` it again)",
                  flush=True)
            continue
        kept[pid] = entry
    return kept


def _announce(url: str, key: str, record: "live.LiveServer") -> None:
    commands.banner(
        f"persona server on {record.base_name} is up: personas join and leave while it runs",
        f"API   {url}   personas: {', '.join(record.personas) or 'none yet'}", key,
        [f"add   PERSONA_API_KEY=... persona add --card CARD --server {url}"])


def _server(server: str, key: str):
    """The record of the server at this URL, checked against what it serves; its model list."""
    from persona.serve import admin, live

    port = _port(server)
    try:
        record = live.read(port)
        if record is None:
            raise live.LiveError(f"no persona server was started on port {port}; start one "
                                 f"with `persona serve --adapters CARD,...` or `--base BASE`")
        served = admin.models(server, key)
    except live.LiveError as error:
        raise CommandError(str(error)) from None
    if not served or served[0]["id"] != record.base_name:
        raise CommandError(f"the server at {server} serves {served[0]['id'] if served else 'nothing'}"
                           f", not the base {record.base_name} that persona started on port {port}")
    return record, served


def add(card: Path = commands.DEFAULT_CARD, out: Path | None = None,
        server: str = DEFAULT_SERVER) -> None:
    """Serve the card's persona on a running server without a restart (trains the card first
    when it has no finished run); a persona already served is swapped for its retrained run.

    Args:
        card: persona card YAML
        out: run folder (default: the card's run folder in the cache)
        server: the live server's API URL (key from PERSONA_API_KEY)
    """
    from persona.serve import admin, live
    from persona.serve.adapters import AdapterError, run_rank, shared_template

    persona = load_card(card)
    key = _key()
    record, served = _server(server, key)  # before anything is trained
    if persona.base != record.base:
        raise CommandError(f"{persona.id} is trained on {persona.base}; the server at {server} "
                           f"serves {record.base}: serve it on a server of its own base")
    if persona.id == record.base_name:
        raise CommandError(f"the card id {persona.id} is the server's base model id; rename it")
    run = commands._trained_run(card, out)
    try:
        if shared_template(run) != record.template:
            raise AdapterError(f"{persona.id} was trained with another chat format than the "
                               f"personas on {server}: serve it on a server of its own")
        if (rank := run_rank(run)) > record.max_lora_rank:  # a full fine-tune has no adapter
            raise AdapterError(f"{persona.id}'s LoRA rank {rank} is above the {record.max_lora_rank} "
                               f"the server was started with; start it again with the card in "
                               f"--adapters to serve it")
        adapter = _snapshot(run, persona, Path(record.adapter_root))
        previous = next((m for m in served if m["id"] == persona.id), None)
        if previous is not None and previous.get("root") == str(adapter):
            print(f"persona: {persona.id} is already served at {server}, unchanged", flush=True)
        else:
            admin.load(server, key, persona.id, str(adapter), replace=previous is not None)
            print(f"persona: {persona.id} {'swapped for its new run' if previous else 'added'} "
                  f"at {server}", flush=True)
        with live.editing(record.port, "add") as changed:
            before = changed.personas.get(persona.id)
            changed.personas[persona.id] = live.ServedPersona(run=str(run.root),
                                                              adapter=str(adapter), since=clock.now())
    except (AdapterError, live.LiveError) as error:
        raise CommandError(str(error)) from None
    if before is not None and before.adapter != str(adapter):
        live.release(Path(before.adapter))


def remove(persona_id: str, server: str = DEFAULT_SERVER) -> None:
    """Stop serving a persona on a running server (the others go on); it is not served again
    after a restart.

    Args:
        persona_id: the persona's id (its card's id, the model name requests send)
        server: the live server's API URL (key from PERSONA_API_KEY)
    """
    from persona.serve import admin, live

    key = _key()
    record, served = _server(server, key)
    if persona_id == record.base_name:
        raise CommandError(f"{persona_id} is the server's base model; stop the server instead")
    loaded = persona_id in [m["id"] for m in served]
    if not loaded and persona_id not in record.personas:
        raise CommandError(f"{persona_id} is not served at {server}; `persona list` shows what is")
    try:
        if loaded:
            admin.unload(server, key, persona_id)
        with live.editing(record.port, "remove") as changed:
            gone = changed.personas.pop(persona_id, None)
    except live.LiveError as error:
        raise CommandError(str(error)) from None
    if gone is not None:
        live.release(Path(gone.adapter))
    print(f"persona: {persona_id} removed from {server}", flush=True)


def list_served(server: str = DEFAULT_SERVER) -> None:
    """Show the personas a running server serves, each with its run's summary.

    Args:
        server: the live server's API URL (key from PERSONA_API_KEY)
    """
    record, served = _server(server, _key())
    print(f"{server}: base {record.base_name}, {len(served) - 1} personas")
    for model in served[1:]:
        entry = record.personas.get(model["id"])
        print(f"  {model['id']:<20} {_summary(Path(entry.run)) if entry else 'not loaded by persona'}")


def _summary(root: Path) -> str:
    """One line from a run's manifest: who, when, how long, how far the loss fell."""
    run = RunFolder(root)
    try:
        manifest = run.read_manifest()
        card = run.card()
    except RunFolderError as error:
        return f"{root} ({error})"
    return (f"{card.name.en} ({card.name.zh}) by {card.creator.en}; {manifest.get('method', '?')} "
            f"finished {manifest.get('finished_at', '?')}, final loss "
            f"{manifest.get('final_loss', '?')}; run {root}")
