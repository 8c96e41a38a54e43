"""Several personas on one vLLM server: the shared base once, each run's LoRA adapter by name.

A request's `model` picks the adapter (vLLM's --enable-lora/--lora-modules). One server has
one chat template: the personas' templates without their default system prompts, which must
then be alike (same chat format, same base). That shared template injects no default, so
clients send the persona's system prompt (PersonaCard.default_system_prompt; the UI does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from persona import paths
from persona.base_models import trusts_remote_code
from persona.card import PersonaCard
from persona.errors import PersonaError
from persona.run_folder import RunFolder, read_json

# train/chat_template.py's default-system block: injected when the first message is no system one.
DEFAULT_SYSTEM_BLOCK = re.compile(
    r"\{%- if not messages or messages\[0\]\['role'\] != 'system' -%\}\{\{- .*? -\}\}\{%- endif -%\}",
    re.S)

# The ranks vLLM 0.32 accepts for --max-lora-rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class AdapterError(PersonaError, ValueError):
    """The cards cannot share one server; the message says why and what to do."""


@dataclass(frozen=True)
class ServedAdapters:
    base: Path | str  # what vLLM loads once
    base_name: str  # the base's own served name (never a card id)
    adapters: tuple[tuple[str, Path], ...]  # (card id, PEFT adapter folder)
    chat_template: Path  # the personas' shared template (theirs, without a default system prompt)
    max_lora_rank: int


def run_rank(run: RunFolder) -> int:
    """The LoRA rank of the adapter that will be served: its own PEFT config, not options.json,
    which a retraining under way may already have rewritten."""
    if not run.has_adapter():
        raise AdapterError(f"{run.adapter} holds no PEFT adapter (adapter_config.json); "
                           f"train the card again with `persona train --force`")
    return adapter_rank(run.adapter)


def adapter_rank(folder: Path) -> int:
    """The LoRA rank of a PEFT adapter folder."""
    return int(read_json(Path(folder) / "adapter_config.json")["r"])


def served_rank(rank: int) -> int:
    """The --max-lora-rank vLLM takes for adapters up to this rank."""
    fitting = [r for r in VLLM_LORA_RANKS if r >= rank]
    if not fitting:
        raise AdapterError(f"LoRA rank {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]})")
    return fitting[0]


def shared_template(run: RunFolder) -> str:
    """The run's chat template without its default system prompt: what a server of several
    personas renders with (the clients send each persona's system prompt; the UI does)."""
    if not run.chat_template.is_file():
        raise AdapterError(f"{run.root} has no {run.relative(run.chat_template)}; run "
                           f"`persona merge` for it")
    return DEFAULT_SYSTEM_BLOCK.sub("", run.chat_template.read_text(encoding="utf-8"))


def check_cards(personas: list[PersonaCard]) -> None:
    """What the cards alone decide (distinct ids, one base): checked before anything is trained."""
    if not personas:
        raise AdapterError("no card given; pass --adapters cards/a.yaml,cards/b.yaml")
    ids = [p.id for p in personas]
    if len(set(ids)) != len(ids):
        raise AdapterError(f"each card may appear once; got ids {ids}")
    bases = {p.base for p in personas}
    if len(bases) != 1:
        raise AdapterError(f"adapters share one base; these cards name {sorted(bases)}: "
                           f"serve them on separate servers")
    if len({trusts_remote_code(p) for p in personas}) != 1:
        raise AdapterError(f"these cards disagree on trust_remote_code for their base "
                           f"{personas[0].base}; one server loads it once: set it alike in each")


def served_base_name(base: Path | str, ids: Iterable[str] = ()) -> str:
    """The name the base is served under: its folder's, never a card id."""
    name = Path(str(base)).name or "base"
    return name + "-base" if name in ids else name


def plan(personas: list[PersonaCard], runs: list[RunFolder], base: Path | str,
         template: Path | None = None) -> ServedAdapters:
    """Check that the finished runs can share one server and say how to serve them; the shared
    template is written to `template` (default: in the cache, named by the ids)."""
    check_cards(personas)
    ids = [p.id for p in personas]
    # Each persona's template injects its own default system prompt; a shared server must inject
    # none (the clients send the persona's: the UI does), and otherwise render alike.
    texts = {shared_template(run) for run in runs}
    if len(texts) != 1:
        raise AdapterError(f"{', '.join(ids)} were trained with different chat formats; one server "
                           f"has one template: serve them separately")
    rank = served_rank(max(run_rank(run) for run in runs))
    shared = template or paths.home() / "adapters" / f"{'+'.join(ids)}.jinja"
    shared.parent.mkdir(parents=True, exist_ok=True)  # written once all checks pass
    shared.write_text(texts.pop(), encoding="utf-8")
    return ServedAdapters(base=base, base_name=served_base_name(base, ids),
                          adapters=tuple((p.id, run.adapter) for p, run in zip(personas, runs)),
                          chat_template=shared, max_lora_rank=rank)
