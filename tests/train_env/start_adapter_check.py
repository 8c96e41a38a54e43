"""Run by tests/test_train_refine.py inside the training env (torch, peft, XTuner).

  python start_adapter_check.py FOLDER   a tiny random Llama and a random LoRA adapter on it
                                         (saved by peft in FOLDER); XTuner's SupervisedFinetune
                                         built by persona's builder from that adapter, and from
                                         it with another rank and other layers; prints a JSON
                                         report
"""

import json
import sys
from pathlib import Path

import torch
from mmengine.config import ConfigDict
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from persona.train.cpu_patches import build_model, load_llm

ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))


def built(folder: Path, r: int, targets: list[str]):
    """The model as the generated config builds it (mmengine hands its dicts over as
    ConfigDicts); the error's text when the builder refuses."""
    llm = ConfigDict(type=load_llm, pretrained_model_name_or_path=str(folder / "base"),
               torch_dtype=torch.float32)
    try:
        return build_model(start_adapter=str(folder), llm=llm, use_activation_checkpointing=False,
                           lora=LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets,
                                           lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    except ValueError as error:
        return str(error)


def main(folder: Path) -> dict:
    # init_lora_weights=False: B is random too, so a weight left at its initial value shows
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=ALL, init_lora_weights=False,
                      task_type="CAUSAL_LM")
    tiny().save_pretrained(folder / "base", safe_serialization=True)
    get_peft_model(tiny(), lora).save_pretrained(folder, safe_serialization=True)
    saved = load_file(str(folder / "adapter_model.safetensors"))
    model = built(folder, 8, ALL)
    loaded = get_peft_model_state_dict(model.llm)
    fresh = get_peft_model_state_dict(get_peft_model(tiny(), LoraConfig(
        r=8, lora_alpha=16, target_modules=ALL, task_type="CAUSAL_LM")))
    return {
        "weights": len(saved),
        "same_keys": sorted(loaded) == sorted(saved),
        "max_difference": max(float((loaded[k] - saved[k]).abs().max()) for k in saved),
        "fresh_difference": max(float((fresh[k] - saved[k]).abs().max()) for k in saved),
        "other_rank": built(folder, 4, ALL),
        "other_layers": built(folder, 8, ALL[:4] + ["up_proj", "down_proj", "lm_head"]),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
