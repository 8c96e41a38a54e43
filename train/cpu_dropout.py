"""LoRA's input dropout on the CPU, drawn with a quarter of the random numbers.

peft puts an nn.Dropout before every LoRA A matrix (seven per layer of the default base, 210 a
step). On the CPU torch's bernoulli_ draws one random number per element, one at a time: those
masks took about a tenth of a default training step here, and a step without dropout was 18 %
shorter (benchmarks/step_time.py, docs/training.md). `CpuDropout` is the same inverted dropout
(each element kept with probability 1 - p, p rounded to a multiple of 1/65536, the kept ones
scaled by 1 / (1 - p)) with its mask cut from 64-bit random words, four 16-bit lanes each.
A different random stream from nn.Dropout's, so not the same training bit for bit; seeded by
torch's generator as nn.Dropout is. Measured (benchmarks/step_time.py), not used in training:
the one persona trained with it failed two eval gates (docs/training.md, "A shorter CPU step").
"""

from __future__ import annotations

import torch

LANES = 4  # 16-bit lanes in one 64-bit random word
LANE_VALUES = 1 << 16


class CpuDropout(torch.nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p {p}: between 0 and 1")
        self.dropped_values = round(p * LANE_VALUES)  # lane values that drop an element
        self.p = self.dropped_values / LANE_VALUES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.dropped_values:
            return x
        count = x.numel()
        # randint over the whole int64 range: every bit uniform, so is every 16-bit lane
        words = torch.randint(-(1 << 63), (1 << 63) - 1, (-(-count // LANES),), dtype=torch.int64,
                              device=x.device)
        lanes = words.view(torch.int16)[:count].view(x.shape)  # uniform on -32768 .. 32767
        keep = lanes >= self.dropped_values - LANE_VALUES // 2
        return x * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_cpu_dropout(model: torch.nn.Module) -> int:
    """Swap every LoRA dropout of `model` (peft's `lora_dropout` dicts) for CpuDropout; how many."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if isinstance(dropout, torch.nn.Dropout):
                dropouts[name] = CpuDropout(dropout.p).train(dropout.training)
                swapped += 1
    return swapped
