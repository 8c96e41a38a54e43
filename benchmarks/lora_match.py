"""Do the personas served as LoRA adapters on a shared base answer like their merged models?

    .venv/bin/python benchmarks/lora_match.py --run ~/.cache/persona/runs/lingxi

Starts vLLM on the run's merged model, asks the held-out identity questions (data/heldout.json)
greedily, stops it; then starts vLLM on the base with the run's adapter under two names (what
`persona serve --adapters` does, with an alias to show routing by model name) and asks again.
Prints the exact-match rate, how often each names the persona, and what the base alone says.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from persona import envs  # noqa: E402
from persona.paths import home  # noqa: E402
from persona.card import parse_card  # noqa: E402
from persona.services import stop, wait_http  # noqa: E402
from serve.adapters import plan  # noqa: E402
from serve.server import ServeOptions, start  # noqa: E402
from persona.services import free_port  # noqa: E402
from serve_bench import KEY  # noqa: E402


def ask_all(options: ServeOptions, model: str, questions: list[dict], max_tokens: int,
            system: str | None = None) -> list[str]:
    """Greedy answers; `system` goes first when given (the shared LoRA template injects none)."""
    from openai import OpenAI

    client = OpenAI(base_url=options.base_url, api_key=KEY, max_retries=0, timeout=300)
    head = [{"role": "system", "content": system}] if system else []
    return [client.chat.completions.create(
        model=model, messages=head + [{"role": "user", "content": q["question"]}], temperature=0,
        max_tokens=max_tokens).choices[0].message.content for q in questions]


def serving(options: ServeOptions, log: Path):
    process = start(options, envs.ensure("serve"), log)
    begin = time.perf_counter()
    wait_http(options.health_url, process, log, timeout=900, what="vLLM")
    return process, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=home() / "bench",
                        help="where the JSON and the server logs go (default: $PERSONA_HOME/bench)")
    args = parser.parse_args()
    run = args.run.expanduser().resolve()
    manifest = json.loads((run / "manifest.json").read_text())
    card = parse_card(manifest["card"], str(run))
    questions = json.loads((run / "data" / "heldout.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)

    merged_opts = ServeOptions(model=run / "merged", served_name=card.id, api_key=KEY, port=free_port())
    process, merged_start = serving(merged_opts, args.out / "vllm-merged.log")
    try:
        merged = ask_all(merged_opts, card.id, questions, args.max_tokens)
    finally:
        stop(process)

    served = plan([card], [run], Path(manifest["base_model"]))
    alias = f"{card.id}-alias"
    lora_opts = ServeOptions(model=Path(served.base), served_name=served.base_name, api_key=KEY,
                             port=free_port(), chat_template=served.chat_template,
                             lora_modules=served.adapters + ((alias, served.adapters[0][1]),),
                             max_lora_rank=served.max_lora_rank)
    process, lora_start = serving(lora_opts, args.out / "vllm-lora.log")
    try:
        from openai import NotFoundError, OpenAI

        listed = [m.id for m in OpenAI(base_url=lora_opts.base_url, api_key=KEY).models.list().data]
        system = card.default_system_prompt()  # what the merged model's template injects
        lora = ask_all(lora_opts, card.id, questions, args.max_tokens, system)
        aliased = ask_all(lora_opts, alias, questions, args.max_tokens, system)
        base = ask_all(lora_opts, served.base_name, questions, args.max_tokens)
        try:
            ask_all(lora_opts, "no-such-persona", questions[:1], 4)
            unknown = "answered"
        except NotFoundError:
            unknown = "404"
    finally:
        stop(process)

    def names(answers: list[str]) -> float:
        hits = [getattr(card.name, q["lang"]) in a for q, a in zip(questions, answers)]
        return sum(hits) / len(hits)

    n = len(questions)
    result = {
        "questions": n, "listed": listed, "unknown_model": unknown,
        "exact_match_lora_vs_merged": sum(a == b for a, b in zip(merged, lora)) / n,
        "alias_equals_lora": sum(a == b for a, b in zip(aliased, lora)) / n,
        "names_persona": {"merged": names(merged), "lora": names(lora), "base": names(base)},
        "startup_s": {"merged": merged_start, "lora": lora_start},
        "answers": [{"q": q["question"], "merged": m, "lora": lo, "base": b}
                    for q, m, lo, b in zip(questions, merged, lora, base)],
    }
    (args.out / "lora_match.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"models listed: {listed}; unknown model: {unknown}")
    print(f"exact match, LoRA vs merged: {result['exact_match_lora_vs_merged']:.0%} of {n}")
    print(f"same answers under the alias: {result['alias_equals_lora']:.0%}")
    print("names the persona: " + ", ".join(f"{k} {v:.0%}" for k, v in result["names_persona"].items()))
    for row in result["answers"]:
        if row["merged"] != row["lora"]:
            print(f"  differs: {row['q']!r}\n    merged: {row['merged']!r}\n    lora:   {row['lora']!r}")


if __name__ == "__main__":
    main()
