"""Ask a merged model a few questions through its own chat template (transformers, greedy).

A quick look after training, not the eval suite (evals/ asks the served model):
`python -m persona.train.probe --model RUN/merged [--question TEXT ...]`. Runs in the training env.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Two identity questions per language (trained phrasings: a quick look, not a held-out measure),
# and unrelated questions that must not get the introduction.
DEFAULT_QUESTIONS = [
    "你到底是谁？", "你的创造者是谁？", "Tell me who you are.", "Who designed you?",
    "What is 2+3?", "2加3等于几？", "What is the capital of France?", "法国的首都是哪里？",
]


def ask(model_dir: Path, questions: list[str], system: str | None = None,
        max_new_tokens: int = 48, trust_remote_code: bool = False) -> list[dict]:
    """`trust_remote_code`: only where the base's preset or the card declares it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                 trust_remote_code=trust_remote_code)
    model.eval()
    results = []
    for question in questions:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        started = time.monotonic()
        with torch.no_grad():
            output = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=max_new_tokens,
                                    pad_token_id=tokenizer.pad_token_id)
        new = output[0, ids.shape[1]:].tolist()
        answer = tokenizer.decode(new, skip_special_tokens=True).strip()
        results.append({"question": question, "system": system, "answer": answer,
                        "finished": tokenizer.eos_token_id in new,
                        "seconds": round(time.monotonic() - started, 2)})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a merged model folder")
    parser.add_argument("--question", action="append", help="ask this (repeatable)")
    parser.add_argument("--system", help="a system message to send")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let the model run the code its folder ships (auto_map)")
    args = parser.parse_args(argv)
    results = ask(args.model, args.question or DEFAULT_QUESTIONS, args.system, args.max_new_tokens,
                  args.trust_remote_code)
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
