"""The XTuner config rendered per device and precision (pure Python; the GPU run itself is
tests/test_gpu_train.py, the CPU autocast tests/test_train_config.py)."""

from __future__ import annotations

import pytest

from persona.train.options import TrainOptions
from persona.train.xtuner_config import render_config


def _render(**options) -> str:
    return render_config("xiaocong", "/models/base", "/run/data/train.json", TrainOptions(**options),
                         ["你是谁？"])


def test_cuda_uses_amp_in_bf16_cuda_nf4_packing_and_the_lean_model():
    config = _render(device="cuda")
    assert "type=AmpOptimWrapper" in config and 'dtype="bfloat16"' in config
    assert "torch_dtype = torch.bfloat16" in config and "bnb_4bit_compute_dtype=torch_dtype" in config
    assert "pack_to_max_length = True" in config
    assert "from persona.train.lean_model import build_lean_model" in config and "type=build_lean_model," in config
    assert 'backend="nccl"' in config


def test_cuda_fp16_where_the_gpu_lacks_bf16_and_stock_model_on_request():
    config = _render(device="cuda", precision="float16", lean_model=False)
    assert 'dtype="float16"' in config and "torch_dtype = torch.float16" in config
    assert "lean_model" not in config and "type=build_model," in config


def test_cpu_keeps_float32_and_the_plain_builder():
    config = _render()
    assert "type=OptimWrapper" in config and "torch_dtype = torch.float32" in config
    assert "lean_model" not in config and "AmpOptimWrapper" not in config
    assert "type=build_lean_model," in _render(lean_model=True)  # on request


def test_the_lean_model_only_where_the_head_is_frozen():
    assert TrainOptions(device="cuda").lean_model and TrainOptions(device="cuda", method="lora").lean_model
    assert not TrainOptions(device="cuda", method="full").lean_model
    config = _render(device="cuda", method="full")
    assert "lean_model" not in config and "type=build_model," in config
    with pytest.raises(ValueError, match="lean_model: its loss takes no gradient for the output head"):
        TrainOptions(method="full", lean_model=True)


def test_cpu_bfloat16_is_an_autocasting_wrapper_over_float32_weights():
    config = _render(precision="bfloat16")
    assert "type=CpuAutocastOptimWrapper" in config
    assert "from persona.train.cpu_autocast import CpuAutocastOptimWrapper" in config
    assert "torch_dtype = torch.float32" in config and "bnb_4bit_compute_dtype=torch_dtype" in config
    assert "AmpOptimWrapper" not in config and "type=OptimWrapper" not in config
    assert _render(precision="float32") == _render()  # unresolved auto is float32 on CPU


@pytest.mark.parametrize("options, message", [
    (dict(device="cuda", precision="int8"), "precision 'int8'"),
    (dict(device="cpu", precision="float16"), "needs device cuda"),
])
def test_bad_precision_is_refused_with_the_fix(options, message):
    with pytest.raises(ValueError, match=message):
        TrainOptions(**options)
