"""bfloat16 autocast for CPU training, where the CPU multiplies bfloat16 natively.

mmengine's AmpOptimWrapper refuses to run without an accelerator, so CPU training used a plain
OptimWrapper: every matrix product in float32. On a CPU with AVX512-BF16 (or AMX) oneDNN
multiplies bfloat16 several times faster. `CpuAutocastOptimWrapper` runs the forward pass (and
so its backward) under `torch.autocast("cpu", bfloat16)`: the matrix products go bfloat16 but
the output head's; the loss and the norms stay float32 (autocast's own lists), so do the LoRA
weights and AdamW's state, and bfloat16 needs no loss scaling. Imported by the generated config
in the training env (mmengine at import).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper


def float32_head(model: torch.nn.Module) -> None:
    """The output head computes in float32 under the autocast. With bfloat16 logits (8 bits:
    one between 16 and 32 is a multiple of 0.125) a persona trained on the default card failed
    the Chinese identity gate, and with this head it passed (one run each, docs/training.md).
    Once per model."""
    llm = getattr(model, "llm", model)  # XTuner's SupervisedFinetune holds the causal LM
    head = llm.get_output_embeddings() if hasattr(llm, "get_output_embeddings") else None
    if head is None or getattr(head, "_persona_float32", False):
        return
    forward = head.forward

    def float32_forward(hidden, *args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return forward(hidden.float(), *args, **kwargs)

    head.forward = float32_forward
    head._persona_float32 = True


class CpuAutocastOptimWrapper(OptimWrapper):
    """OptimWrapper whose optim_context is also a CPU bfloat16 autocast (head in float32)."""

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        float32_head(model)
        with super().optim_context(model), torch.autocast("cpu", dtype=torch.bfloat16):
            yield
