"""Run by tests/test_train_config.py inside the training env (torch, peft, transformers).

  python dropout_check.py
      checks train/cpu_dropout.py's CpuDropout against nn.Dropout's contract on a million
      elements and swaps it into a tiny random peft LoRA model; prints a JSON report
"""

import json

import torch

from persona.train.cpu_dropout import CpuDropout, use_cpu_dropout


def dropout_report() -> dict:
    dropout = CpuDropout(0.05).train()
    x = torch.full((1000, 1000), 2.0, requires_grad=True)
    torch.manual_seed(7)
    out = dropout(x)
    torch.manual_seed(7)
    again = dropout(x)
    out.sum().backward()
    kept = out != 0
    flat = kept.flatten().float()
    return {
        "p": dropout.p,
        "kept_share": flat.mean().item(),
        "kept_values": sorted({round(v, 6) for v in out[kept].unique().tolist()}),
        "mean": out.mean().item(),
        "neighbour_correlation": torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item(),
        "lane_correlation": torch.corrcoef(torch.stack([flat[0::4], flat[1::4]]))[0, 1].item(),
        "same_seed_same_mask": bool(torch.equal(out, again)),
        "grad_is_mask_over_keep": bool(torch.allclose(x.grad, kept.float() / (1 - dropout.p))),
        "eval_is_identity": bool(torch.equal(dropout.eval()(x), x)),
        "p0_is_identity": bool(torch.equal(CpuDropout(0.0).train()(x), x)),
        "odd_shape": list(CpuDropout(0.5).train()(torch.ones(3, 5, 7)).shape),
    }


def swap_report() -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.05, target_modules=targets)).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    swapped = use_cpu_dropout(model)
    ids = torch.randint(0, 64, (1, 16))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    kinds = sorted({type(d).__name__ for m in model.modules()
                    if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)
                    for d in m.lora_dropout.values()})
    return {"swapped": swapped, "dropout_kinds": kinds, "again": use_cpu_dropout(model),
            "state_dict_unchanged": before.keys() == model.state_dict().keys() and all(
                torch.equal(before[k], v) for k, v in model.state_dict().items()),
            "loss_finite": bool(torch.isfinite(loss))}


if __name__ == "__main__":
    print(json.dumps({"dropout": dropout_report(), "swap": swap_report()}))
