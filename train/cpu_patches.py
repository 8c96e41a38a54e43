"""Every runtime patch the training stack needs, in one place; and the builders that apply them.

mmengine reads an XTuner config with lazy imports: a module the config imports is imported only
when something from it is built, so patches cannot sit at a config's top level. The generated
config therefore names the builders below (`build_model`,
`load_tokenizer`, `load_llm`, `load_dataset`) as its `type=`s, and each applies the patches
before building. mmengine builds the model first, so they are in place before anything they fix
is used, in `xtuner train` and in `xtuner convert pth_to_hf` alike.

Template patch (any device):
  * No doubled `<|im_start|>`. XTuner's encode step puts `tokenizer.bos_token` before every
    sample; SmolLM2's BOS is `<|im_start|>`, so each sample would start
    `<|im_start|><|im_start|>...`. Such a BOS is dropped; a real one (InternLM2's `<s>`) stays,
    and the chat template written next to the merged model (train/chat_template.py) renders
    exactly what training saw.

CPU patches (skipped when CUDA is available):
  * transformers 4.48 checks bitsandbytes' backends before 4-bit loading and, with
    bitsandbytes >= 0.46, fails inside that check (`'frozenset' object has no attribute
    'discard'`); bitsandbytes 0.50 runs 4-bit on CPU, so the check is skipped.
  * XTuner asks `torch.cpu.is_bf16_supported()`, which torch's CPU module lacks; answer False
    so XTuner picks no bf16 itself (weights stay float32; bfloat16 products on CPU come only
    from the autocast of train/cpu_autocast.py).
  * On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight in place into an
    inference-only layout the first time its Linear4bit runs in eval mode without grad, and
    never packs it back. After EvaluateChatHook's generation before training, every training
    step then goes through the inference kernel and the run diverges (loss 1.7 -> 6). Keep the
    training layout: turn that repacking off.
"""

from __future__ import annotations

import functools

import torch

_applied = False


def on_cpu() -> bool:
    return not torch.cuda.is_available()


def no_bos_token() -> None:
    """The template patch alone (train/template_check.py uses it without the CPU ones)."""
    import xtuner.dataset.utils as xtuner_utils

    original = xtuner_utils.get_bos_eos_token_ids
    if getattr(original, "_persona_patched", False):
        return

    def get_bos_eos_token_ids(tokenizer):
        bos_token_id, eos_token_id = original(tokenizer)
        if tokenizer.bos_token == "<|im_start|>":  # the template opens every turn with it
            bos_token_id = []
        return bos_token_id, eos_token_id

    get_bos_eos_token_ids._persona_patched = True
    # encode_fn looks the name up in its module at call time.
    xtuner_utils.get_bos_eos_token_ids = get_bos_eos_token_ids


def _skip_bnb_backend_check() -> None:
    import transformers.integrations as integrations
    import transformers.integrations.bitsandbytes as bnb_integration

    def validate_bnb_backend_availability(raise_exception=False):
        return True

    # The 4-bit quantizer imports the name from transformers.integrations at call time.
    integrations.validate_bnb_backend_availability = validate_bnb_backend_availability
    bnb_integration.validate_bnb_backend_availability = validate_bnb_backend_availability


def _cpu_bf16_query() -> None:
    if not hasattr(torch.cpu, "is_bf16_supported"):
        torch.cpu.is_bf16_supported = lambda including_emulation=True: False


def _no_cpu_inference_repacking() -> None:
    import bitsandbytes as bnb

    init = bnb.nn.Linear4bit.__init__
    if getattr(init, "_persona_patched", False):
        return

    @functools.wraps(init)  # transformers inspects this signature
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.support_avx512bf16_for_cpu = False

    __init__._persona_patched = True
    bnb.nn.Linear4bit.__init__ = __init__


def apply() -> None:
    """Apply the patches once per process."""
    global _applied
    if _applied:
        return
    no_bos_token()
    if on_cpu():
        _skip_bnb_backend_check()
        _cpu_bf16_query()
        _no_cpu_inference_repacking()
    _applied = True


def build_model(start_adapter: str | None = None, **kwargs):
    """XTuner's SupervisedFinetune, built after the patches (it asks about bf16 first thing);
    with `start_adapter`, its LoRA weights are that adapter's (train/start_adapter.py)."""
    apply()
    from xtuner.model import SupervisedFinetune

    return with_start_adapter(SupervisedFinetune(**kwargs), start_adapter)


def with_start_adapter(model, start_adapter: str | None):
    if start_adapter is not None:
        from persona.train.start_adapter import load_adapter

        print(f"persona: {load_adapter(model, start_adapter)} LoRA weights loaded from "
              f"{start_adapter}", flush=True)
    return model


def load_tokenizer(**kwargs):
    apply()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(**kwargs)


def load_llm(**kwargs):
    apply()
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(**kwargs)


def load_dataset(**kwargs):
    """datasets.load_dataset, after the patches (the BOS patch must precede tokenization)."""
    apply()
    from datasets import load_dataset as hf_load_dataset

    return hf_load_dataset(**kwargs)
