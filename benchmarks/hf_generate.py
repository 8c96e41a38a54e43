"""The baseline: Hugging Face transformers `generate`, one request at a time, as a simple web demo
serves a model. Runs inside the serve environment (transformers + torch); prints one JSON line.

    python benchmarks/hf_generate.py MODEL_DIR PROMPTS_JSON MAX_TOKENS
"""

from __future__ import annotations

import json
import resource
import sys
import time


class FirstTokenClock:
    """A streamer that notes when generate() hands over its first new token."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # the first call carries the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def main(model_dir: str, prompts_file: str, max_tokens: int) -> None:
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    load_s = time.perf_counter() - started
    prompts = json.loads(open(prompts_file, encoding="utf-8").read())
    requests = []
    wall_start = time.perf_counter()
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        clock = FirstTokenClock()
        begin = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_tokens, min_new_tokens=max_tokens,
                                 do_sample=False, streamer=clock,
                                 pad_token_id=tokenizer.eos_token_id)
        end = time.perf_counter()
        requests.append({"ttft": (clock.first or end) - begin, "latency": end - begin,
                         "tokens": int(out.shape[1] - ids["input_ids"].shape[1])})
    wall = time.perf_counter() - wall_start
    print("RESULT " + json.dumps({
        "load_s": load_s, "wall_s": wall, "requests": requests, "threads": torch.get_num_threads(),
        "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
