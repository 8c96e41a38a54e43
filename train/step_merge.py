"""The convert and merge steps: `xtuner convert pth_to_hf` (the LoRA adapter, or for a full
fine-tune the whole model), then `xtuner convert merge` into merged.partial/, which gets the
training chat template, is checked token for token and only then replaces merged/. The manifest
goes first: the weights it described are about to change.

XTuner's `convert merge` loads the base with trust_remote_code=True whatever it is told (its
merge.py hard-codes it), so a base that ships code of its own (auto_map) is refused before it
unless its preset or the card declares that code trusted (refuse_undeclared_code)."""

from __future__ import annotations

from pathlib import Path

from persona.base_models import declared_code, trusts_remote_code
from persona.card import PersonaCard
from persona.run_folder import RunFolder
from persona.services import tail
from persona.train.progress import PipelineError, say
from persona.train.xtuner_run import XTuner


def local_copy(base: str) -> Path | None:
    """The folder holding the base's config: the base itself, or a hub id's cached snapshot."""
    if Path(base).expanduser().is_dir():
        return Path(base).expanduser()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(base, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def refuse_undeclared_code(base: str, card: PersonaCard) -> None:
    """A base whose files name code of its own is trained and merged only when its preset or the
    card declares it trusted: XTuner's merge would run that code unasked."""
    if trusts_remote_code(card):
        return
    folder = local_copy(base)
    found = declared_code(folder) if folder is not None else []
    if found:
        raise PipelineError(
            f"base {card.base!r} ships Python code of its own (auto_map in {', '.join(found)} "
            f"of {folder}), which XTuner's merge runs. If you trust that code, add "
            "`trust_remote_code: true` to the card; otherwise choose a base without it")


def convert(run: RunFolder, checkpoint: Path, method: str, xtuner: XTuner) -> Path:
    """pth_to_hf: the LoRA adapter into adapter/, or (full) the whole model into merged.partial/."""
    target = run.merged_partial if method == "full" else run.adapter
    # Before the first deletion: a run stopped from here on is unfinished, never new weights
    # under the old manifest (step_manifest writes it again at the end).
    run.remove(run.manifest)
    run.remove(run.exports)  # made from the weights being replaced
    run.remove(target)
    if method == "full":
        run.remove(run.adapter)  # an earlier LoRA run's; this run has none
    say(f"xtuner convert pth_to_hf {checkpoint.name} -> {target}")
    xtuner(["convert", "pth_to_hf", str(run.config), str(checkpoint), str(target),
            "--safe-serialization"], run.convert_log)
    expected = "config.json" if method == "full" else "adapter_config.json"
    if not (target / expected).exists():
        raise PipelineError(f"pth_to_hf left no {expected} in {target}:\n{tail(run.convert_log)}")
    return target


def merge(run: RunFolder, base: str, adapter: Path | None, card: PersonaCard,
          prompt_template: str, xtuner: XTuner) -> dict:
    """Merge into merged.partial, give it the training template, check it, then swap it in.
    Without an adapter (full fine-tune) merged.partial already holds the model."""
    from persona.train.template_check import align

    trusted = trusts_remote_code(card)
    if adapter is not None:
        refuse_undeclared_code(base, card)  # a hub base is in the cache by now
        run.remove(run.merged_partial)
        say(f"xtuner convert merge -> {run.merged}")
        xtuner(["convert", "merge", base, str(adapter), str(run.merged_partial),
                "--safe-serialization"], run.merge_log)
        if not list(run.merged_partial.glob("*.safetensors")):
            raise PipelineError(f"merge left no safetensors in {run.merged_partial}:\n"
                                f"{tail(run.merge_log)}")
    try:
        chat = align(run.merged_partial, card.default_system_prompt(), prompt_template, trusted)
    except ValueError as error:
        raise PipelineError(str(error)) from None
    run.remove(run.merged)
    run.merged_partial.rename(run.merged)
    return chat
