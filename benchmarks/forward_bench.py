"""What bounds decoding on this CPU: one decoding step of the merged persona in plain torch
(eager, float32, every core, a KV cache), timed at the batch sizes the serving benchmark drives,
with no scheduler, API server or streaming around it, and torch's own float32 matrix product
(the arithmetic ceiling of these cores). Runs in the serve environment (the
torch vLLM uses); prints and writes JSON.

    .venv/bin/python benchmarks/forward_bench.py --run ~/.cache/persona/runs/xiaocong \
        --result docs/serving/forward.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from persona import envs  # noqa: E402
from persona.run_folder import RunFolder  # noqa: E402

# Runs inside the serve env: argv = model folder, batch sizes, prompt tokens, steps.
STEP = r"""
import json, statistics, sys, time
import torch
from transformers import AutoModelForCausalLM
model_dir, batches, prompt, steps = sys.argv[1], [int(b) for b in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "batches": {}}
with torch.inference_mode():
    for batch in batches:
        ids = torch.randint(100, 20000, (batch, prompt))
        out = model(input_ids=ids, use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(steps):
            began = time.perf_counter()
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - began)
        step = statistics.median(times[3:])
        result["batches"][batch] = {"step_ms": round(step * 1000, 1), "tokens_per_s": round(batch / step, 1)}
        print(batch, result["batches"][batch], file=sys.stderr, flush=True)
# The arithmetic ceiling: torch's own float32 matrix product on these cores.
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
for _ in range(3):
    a @ b
began = time.perf_counter()
for _ in range(10):
    a @ b
result["matmul_gflops"] = round(10 * 2 * 2048**3 / (time.perf_counter() - began) / 1e9, 1)
result["parameters"] = sum(p.numel() for p in model.parameters())
print("RESULT " + json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished persona run folder")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--prompt-tokens", type=int, default=48)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    run = RunFolder.at(args.run)
    done = subprocess.run([str(envs.python("serve")), "-c", STEP, str(run.merged), args.batches,
                           str(args.prompt_tokens), str(args.steps)],
                          env=envs.command_env("serve"), capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the forward benchmark failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):]) | {
        "prompt_tokens": args.prompt_tokens, "steps": args.steps, "model": run.card().id}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
