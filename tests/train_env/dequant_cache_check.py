"""Run by tests/test_train_dequant_cache.py inside the training env (torch, bitsandbytes, peft).

  python dequant_cache_check.py FOLDER
      a tiny random Llama saved in FOLDER, loaded twice in 4 bits (NF4, double quantisation) as
      the generated config loads it (persona.train.cpu_patches.load_llm) with LoRA on every
      projection, once with the dequantised-weight cache and once without; the same two
      optimizer steps on each (float32, then under bfloat16 autocast where the CPU has it),
      and a checkpoint load that replaces the 4-bit weights; prints a JSON report
"""

import json
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

from persona.train.cpu_patches import load_llm

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make(folder: Path) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)


def build(folder: Path, cached: bool):
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32,
                                      bnb_4bit_use_double_quant=True, bnb_4bit_quant_type="nf4")
    llm = load_llm(pretrained_model_name_or_path=str(folder), torch_dtype=torch.float32,
                   quantization_config=quantization, dequant_cache=cached)
    torch.manual_seed(1)  # the same LoRA weights and dropout masks for both
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=TARGETS,
                      init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(llm, lora)


def steps(model, autocast: bool) -> dict:
    """Two AdamW steps on fixed tokens: each loss, the LoRA gradients of the last, the weights."""
    torch.manual_seed(2)
    ids = torch.randint(0, 512, (1, 64))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return {"losses": losses, "grads": grads, "weights": weights}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def compare(folder: Path, autocast: bool) -> dict:
    plain, cached = (steps(build(folder, c), autocast) for c in (False, True))
    return {"losses": [plain["losses"], cached["losses"]],
            "same_losses": plain["losses"] == cached["losses"],
            "same_grads": same(plain["grads"], cached["grads"]),
            "same_weights": same(plain["weights"], cached["weights"]),
            "lora_tensors": len(plain["grads"])}


def reloaded(folder: Path) -> dict:
    """The two decoder layers' 4-bit weights swapped after the cache is filled, as a checkpoint
    load replaces them: the answers follow the new weights."""
    import bitsandbytes as bnb

    model = build(folder, cached=True).eval()
    torch.manual_seed(3)
    ids = torch.randint(0, 512, (1, 16))

    def four_bit(block):
        return [m for m in block.modules() if isinstance(m, bnb.nn.Linear4bit)]

    with torch.no_grad():
        before = model(input_ids=ids).logits
        first, second = (four_bit(block) for block in model.base_model.model.model.layers)
        cached = sum("_persona_dequantized" in layer.__dict__ for layer in first + second)
        for a, b in zip(first, second):
            a.weight, b.weight = b.weight, a.weight
        after = model(input_ids=ids).logits
        for layer in first + second:
            del layer.forward  # bitsandbytes' own forward again
        reference = model(input_ids=ids).logits
    return {"layers": len(first + second), "cached_before": cached,
            "changed": not torch.equal(before, after), "follows": torch.equal(after, reference)}


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    make(folder)
    report = {"float32": compare(folder, autocast=False), "reload": reloaded(folder),
              "bfloat16_native": torch.backends.cpu.get_cpu_capability() == "AVX512"
              and "avx512_bf16" in Path("/proc/cpuinfo").read_text()}
    if report["bfloat16_native"]:
        report["bfloat16"] = compare(folder, autocast=True)
    print(json.dumps(report))
