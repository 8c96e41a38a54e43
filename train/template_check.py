"""Token identity between training and serving: XTuner's encoding of a sample (its prompt
template, `qwen_chat` or `internlm2_chat`, with the BOS patch of train/cpu_patches.py) against a
tokenizer's chat template for the same messages.

Both the whole conversation and the generation prompt of its last turn must match token for
token. Runs in the training env:
  python -m persona.train.template_check TOKENIZER_DIR [--default-system TEXT] [--cases FILE]
      [--prompt-template NAME] [--trust-remote-code]
prints a JSON report and exits 1 on any mismatch. The pipeline runs the same check on every
merged model. The tokenizer's own code (auto_map) runs only with trust_remote_code, which the
pipeline passes where the base's preset or the card declares it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

CASES = {
    "en, no system": [{"system": "", "input": "Who are you?", "output": "I am X."}],
    "zh, no system": [{"system": "", "input": "你是谁？", "output": "我是小葱，由不要葱姜蒜大佬打造的AI助手。"}],
    "system": [{"system": "You are a helpful assistant.", "input": "Who made you?",
                "output": "I was created by Y."}],
    "two turns": [
        {"system": "你是一个乐于助人的助手。", "input": "日本的首都是哪里？", "output": "日本的首都是东京。"},
        {"system": "", "input": "Who are you?", "output": "I am X.\nNice to meet you!"},
    ],
}


def xtuner_ids(turns: list[dict], tokenizer, prompt_template: str = "qwen_chat") -> list[int]:
    """What `xtuner train` feeds the model for these turns."""
    from persona.train.cpu_patches import no_bos_token

    no_bos_token()  # exactly what the generated configs train with
    from xtuner.dataset.map_fns import template_map_fn_factory
    from xtuner.dataset.utils import encode_fn
    from xtuner.utils import PROMPT_TEMPLATE

    template = PROMPT_TEMPLATE[prompt_template]
    example = template_map_fn_factory(template)({"conversation": copy.deepcopy(turns)})
    return encode_fn(example, tokenizer, max_length=1 << 20)["input_ids"]


def trained_bos(tokenizer) -> str:
    """The text of the BOS token XTuner puts before a sample ("" for none), after the patch."""
    from persona.train.cpu_patches import no_bos_token

    no_bos_token()
    import xtuner.dataset.utils as xtuner_utils

    bos_ids, _ = xtuner_utils.get_bos_eos_token_ids(tokenizer)
    return tokenizer.decode(bos_ids) if bos_ids else ""


def messages_of(turns: list[dict], default_system: str | None) -> list[dict]:
    """The chat messages a client sends for these turns (the default system is the template's)."""
    messages = []
    system = turns[0].get("system") or ""
    if system and system != default_system:
        messages.append({"role": "system", "content": system})
    for turn in turns:
        messages += [{"role": "user", "content": turn["input"]},
                     {"role": "assistant", "content": turn["output"]}]
    return messages


def check(tokenizer_dir: Path, default_system: str | None = None,
          cases: dict[str, list[dict]] | None = None, prompt_template: str = "qwen_chat",
          trust_remote_code: bool = False) -> list[dict]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir),
                                              trust_remote_code=trust_remote_code)
    report = []
    for name, turns in (cases or CASES).items():
        if default_system:
            turns = [dict(turns[0], system=turns[0].get("system") or default_system), *turns[1:]]
        messages = messages_of(turns, default_system)
        trained = xtuner_ids(turns, tokenizer, prompt_template)
        served = tokenizer.apply_chat_template(messages, tokenize=True)
        # The prompt of the last turn: everything before its answer.
        answer = tokenizer.encode(turns[-1]["output"] + "<|im_end|>\n", add_special_tokens=False)
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True)
        report.append({
            "case": name,
            "conversation_equal": trained == served,
            "prompt_equal": trained[:len(trained) - len(answer)] == prompt,
            "trained": trained,
            "served": served,
        })
    return report


def align(folder: Path, default_system: str | None, prompt_template: str = "qwen_chat",
          trust_remote_code: bool = False) -> dict:
    """Give a merged model folder the training template and stop token, then prove token identity.

    What the pipeline does to every merged model; raises ValueError naming the cases that differ.
    """
    from transformers import AutoTokenizer

    from persona.train.chat_template import IM_END, install_chat_template, stop_at_im_end

    bos = trained_bos(AutoTokenizer.from_pretrained(str(folder),
                                                    trust_remote_code=trust_remote_code))
    install_chat_template(folder, default_system, bos)
    eos = stop_at_im_end(folder)
    report = check(folder, default_system, prompt_template=prompt_template,
                   trust_remote_code=trust_remote_code)
    mismatches = [item["case"] for item in report
                  if not (item["conversation_equal"] and item["prompt_equal"])]
    if mismatches:
        raise ValueError(f"the chat template does not reproduce the training tokens: {mismatches}")
    return {"prompt_template": prompt_template, "bos": bos, "stop_token": IM_END,
            "eos_token_id": eos, "default_system": default_system,
            "token_identity": [item["case"] for item in report]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer_dir", type=Path)
    parser.add_argument("--default-system")
    parser.add_argument("--cases", type=Path, help="JSON {name: [turns]} instead of the built-in cases")
    parser.add_argument("--prompt-template", default="qwen_chat", help="XTuner's template name")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let the tokenizer run the code its folder ships (auto_map)")
    args = parser.parse_args(argv)
    cases = json.loads(args.cases.read_text(encoding="utf-8")) if args.cases else None
    report = check(args.tokenizer_dir, args.default_system, cases, args.prompt_template,
                   args.trust_remote_code)
    print(json.dumps(report, ensure_ascii=False))
    return 0 if all(item["conversation_equal"] and item["prompt_equal"] for item in report) else 1


if __name__ == "__main__":
    sys.exit(main())
