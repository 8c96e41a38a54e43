"""Training that starts from a finished run's LoRA adapter (`persona train --refine`): the
generated config names the adapter folder, and the model builder loads its weights into the
freshly built LoRA model before the first step. Every LoRA weight must come from the file and
the file may hold nothing else: a partial load would train from random LoRA weights, which
XTuner's own checkpoint loading (strict=False) lets pass without a word."""

from __future__ import annotations

from pathlib import Path

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # what pth_to_hf --safe-serialization writes


def load_adapter(model, folder: str | Path) -> int:
    """Load the adapter in `folder` into XTuner's SupervisedFinetune `model`; the number of
    weights loaded. Raises ValueError naming what did not match."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(folder) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ValueError(f"no {ADAPTER_WEIGHTS} in {folder}: the run's adapter is missing")
    weights = load_file(str(path))
    try:
        result = set_peft_model_state_dict(model.llm, weights)
    except RuntimeError as error:  # torch's "size mismatch" for another rank
        raise ValueError(f"the adapter in {folder} does not fit the model being trained: "
                         f"{str(error).strip().splitlines()[-1].strip()}") from None
    missing = [key for key in result.missing_keys if "lora_" in key]
    if missing or result.unexpected_keys or not weights:
        raise ValueError(
            f"the adapter in {folder} does not fit the model being trained ({len(missing)} LoRA "
            f"weights missing, e.g. {missing[:2]}; {len(result.unexpected_keys)} unexpected, "
            f"e.g. {list(result.unexpected_keys)[:2]}): its rank or layers differ from the run's "
            "options")
    return len(weights)
