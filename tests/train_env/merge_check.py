"""Run by tests/test_train_merge.py inside the training env (torch, transformers, peft).

  python merge_check.py make FOLDER      a tiny random Llama in FOLDER/base, a random LoRA
                                         adapter on it in FOLDER/adapter
  python merge_check.py compare FOLDER   logits of base + adapter (peft) and of FOLDER/merged
                                         (written by `xtuner convert merge`) on random input;
                                         prints a JSON report
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make(folder: Path, tokenizer_dir: Path) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder / "base", safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):  # `xtuner convert merge` saves it too
        shutil.copy(tokenizer_dir / name, folder / "base" / name)
    # init_lora_weights=False: B is random too, so the adapter really changes the logits
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(folder / "adapter", safe_serialization=True)


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def compare(folder: Path) -> dict:
    torch.manual_seed(1)
    ids = torch.randint(0, 49152, (2, 48))
    base = AutoModelForCausalLM.from_pretrained(folder / "base", torch_dtype=torch.float32).eval()
    plain = logits(base, ids)
    adapted = logits(PeftModel.from_pretrained(base, folder / "adapter").eval(), ids)
    merged_model = AutoModelForCausalLM.from_pretrained(folder / "merged", torch_dtype=torch.float32)
    merged = logits(merged_model.eval(), ids)
    return {
        "merged_vs_adapter": (merged - adapted).abs().max().item(),
        "base_vs_adapter": (plain - adapted).abs().max().item(),
        "logit_scale": adapted.abs().max().item(),
        "merged_dtype": json.loads((folder / "merged" / "config.json").read_text()).get("torch_dtype"),
        "lora_keys_left": [name for name in merged_model.state_dict() if "lora" in name],
    }


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    if mode == "make":
        make(folder, Path(sys.argv[3]))
    else:
        print(json.dumps(compare(folder)))
