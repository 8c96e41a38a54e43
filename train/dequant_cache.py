"""CPU QLoRA without dequantising every weight twice a step (`--dequant-cache`, on by default).

bitsandbytes multiplies by a 4-bit weight on the CPU by dequantising the whole weight to the
compute dtype and then calling an ordinary matrix product: once in the forward pass and once
more in the backward pass (for the gradient of the input). The base's weights are frozen, so
both dequantise to the same tensor on every step. For SmolLM2-135M that is 106 M weights
dequantised twice per step; this module keeps each layer's dequantised weight instead and
multiplies by it directly: the same dequantisation, the same products, the same gradients
(tests/test_train_dequant_cache.py compares them bit for bit), at 4 bytes per weight of
memory (0.42 GB for the 135M base). On CUDA bitsandbytes has fused kernels and QLoRA's point
is the memory, so the cache is CPU only.

The weight is dequantised again whenever its storage or quantisation state is replaced (a
checkpoint load), and never while bitsandbytes' inference-only CPU layout is in use.
"""

from __future__ import annotations

import types

_CACHE = "_persona_dequantized"


def _forward(self, x):
    """Linear4bit.forward with the dequantised weight kept between calls."""
    import bitsandbytes.functional as F
    import torch
    from bitsandbytes.nn.modules import fix_4bit_weight_quant_state_from_module

    fix_4bit_weight_quant_state_from_module(self)
    weight, state = self.weight, self.weight.quant_state
    if getattr(state, "packing_format_for_cpu", False) or x.device.type != "cpu":
        return type(self).forward(self, x)
    if not self.compute_type_is_set:
        self.set_compute_type(x)
        self.compute_type_is_set = True
    inp_dtype = x.dtype
    if self.compute_dtype is not None:
        x = x.to(self.compute_dtype)
    key = (weight.data_ptr(), id(state), x.dtype)
    cached = self.__dict__.get(_CACHE)
    if cached is None or cached[0] != key:
        # what bitsandbytes' backward multiplies by: [out_features, in_features]
        cached = (key, F.dequantize_4bit(weight.data, state).to(x.dtype))
        self.__dict__[_CACHE] = cached
    bias = self.bias
    if bias is not None:
        if bias.dtype != x.dtype:
            bias.data = bias.data.to(x.dtype)
        bias = bias.to(self.compute_dtype)
    return torch.nn.functional.linear(x, cached[1], bias).to(inp_dtype)


def cache_dequantized(model) -> int:
    """Give every 4-bit linear layer of `model` the cached forward; returns how many."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.forward = types.MethodType(_forward, layer)
    return len(layers)
