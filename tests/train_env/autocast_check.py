"""Run by tests/test_train_config.py inside the training env (mmengine, torch).

  python autocast_check.py FLOAT32_CONFIG BFLOAT16_CONFIG
      builds each generated config's optimizer wrapper (mmengine's builder, the config's own
      type) around the same small model and takes one step in its optim_context; prints a JSON
      report: each step's dtypes and gradient, whether this CPU multiplies bfloat16 natively
      (torch's view), and the precision the pipeline resolves from each --precision
"""

import json
import sys

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from persona.card import load_card
from persona.train.pipeline import cpu_multiplies_bfloat16, options_from
from persona.train.progress import PipelineError
from persona.train.pipeline_args import parse_args


class Tiny(torch.nn.Module):
    """A body and an output head, as a causal LM has them."""

    def __init__(self):
        super().__init__()
        self.body, self.head = torch.nn.Linear(64, 256), torch.nn.Linear(256, 32)

    def get_output_embeddings(self):
        return self.head

    def forward(self, inputs):
        self.hidden = self.body(inputs)
        return self.head(torch.nn.functional.silu(self.hidden))


def name(dtype: torch.dtype) -> str:
    return str(dtype).split(".")[1]


def one_step(config_path: str) -> dict:
    torch.manual_seed(0)
    model = Tiny()
    wrapper = build_optim_wrapper(model, Config.fromfile(config_path).optim_wrapper)
    before = model.body.weight.detach().clone()
    inputs, target = torch.randn(16, 64), torch.randint(0, 32, (16,))
    with wrapper.optim_context(model):
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, target)
    loss.backward()
    grad = model.body.weight.grad.detach().clone()
    wrapper.step()
    return {"wrapper": type(wrapper).__name__, "hidden": name(model.hidden.dtype),
            "logits": name(logits.dtype), "loss": name(loss.dtype),
            "weight": name(model.body.weight.dtype),
            "moved": bool((model.body.weight != before).any()), "grad": grad.flatten().tolist()}


def trained_with(given: str) -> str:
    """The precision the pipeline resolves for a CPU run given these flags, or its refusal."""
    args = parse_args(["--card", "cards/xiaocong.yaml", "--base-model", "base", "--out", "run",
                       "--device", "cpu", *given.split()])
    try:
        return options_from(args, load_card("cards/xiaocong.yaml")).precision
    except PipelineError as error:
        return str(error)


float32, bfloat16 = one_step(sys.argv[1]), one_step(sys.argv[2])
a, b = torch.tensor(float32.pop("grad")), torch.tensor(bfloat16.pop("grad"))
print(json.dumps({"float32": float32, "bfloat16": bfloat16,
                  "grad_relative_error": float((a - b).norm() / a.norm()),
                  "native": cpu_multiplies_bfloat16(),
                  "pipeline": {given or "none": trained_with(given) for given in (
                      "", "--precision auto", "--precision float32", "--precision bfloat16")}}))
