"""Greedy answers of a GGUF file under llama.cpp, as `persona export` checks what it wrote.

Runs inside the gguf environment (llama-cpp-python): `python -m persona.serve.llama_cpp_answers
MODEL.gguf CONVERSATIONS.json OUT.json`, where CONVERSATIONS.json is a list of OpenAI-style
message lists; OUT.json gets {"chat_template": the one in the file, "answers": [...]}. The
answers go through the chat template inside the file (llama-cpp-python renders it with Jinja
when it is none of its built-in formats), so the check sends the prompts a llama.cpp user's
chat sends. One progress line per ten answers on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def answer_all(model: Path, conversations: list[list[dict]], max_tokens: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), n_ctx=2048, n_threads=os.cpu_count() or 1, seed=0,
                verbose=False)
    answers, started = [], time.monotonic()
    for number, messages in enumerate(conversations, 1):
        reply = llm.create_chat_completion(messages=messages, temperature=0.0,
                                           max_tokens=max_tokens)
        choice = reply["choices"][0]
        answers.append({"content": choice["message"]["content"] or "",
                        "finish_reason": choice["finish_reason"]})
        if number % 10 == 0 or number == len(conversations):
            print(f"persona:   llama.cpp answered {number}/{len(conversations)} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return {"chat_template": llm.metadata.get("tokenizer.chat_template"), "answers": answers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persona.serve.llama_cpp_answers")
    parser.add_argument("model", type=Path)
    parser.add_argument("conversations", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    conversations = json.loads(args.conversations.read_text(encoding="utf-8"))
    result = answer_all(args.model, conversations, args.max_tokens)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
