"""Do the personas served as LoRA adapters on a shared base answer like their merged models?

    .venv/bin/python benchmarks/lora_match.py --run ~/.cache/persona/runs/lingxi ~/.cache/persona/runs/xiaocong

For each run: starts vLLM on its merged model, asks its held-out identity questions
(data/heldout.json) greedily, stops it. Then starts one vLLM server on the shared base with every
run's adapter under its card id (what `persona serve --adapters` does) and asks each persona's
questions through its own adapter, with the system prompt its merged template injects. Prints,
per persona, the exact-match rate against the merged model, how often the answers name the
persona and how often another one (routing by model name), and what the base alone says.
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
from persona.run_folder import RunFolder  # noqa: E402
from persona.services import free_port, stop, wait_http  # noqa: E402
from persona.serve.adapters import plan  # noqa: E402
from persona.serve.server import ServeOptions, start  # noqa: E402
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


def merged_answers(run: RunFolder, card, questions: list[dict], max_tokens: int,
                   out: Path) -> tuple[list[str], float]:
    """The merged model's answers, served on its own, and its start-up seconds."""
    options = ServeOptions(model=run.merged, served_name=card.id, api_key=KEY, port=free_port())
    process, startup = serving(options, out / f"vllm-merged-{card.id}.log")
    try:
        return ask_all(options, card.id, questions, max_tokens), startup
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, nargs="+", required=True, help="finished run folders")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=home() / "bench",
                        help="where the JSON and the server logs go (default: $PERSONA_HOME/bench)")
    args = parser.parse_args()
    runs = [RunFolder.at(run) for run in args.run]
    manifests = [run.read_manifest() for run in runs]
    cards = [run.card() for run in runs]
    questions = {c.id: run.read_heldout() for c, run in zip(cards, runs)}
    args.out.mkdir(parents=True, exist_ok=True)

    merged, startup = {}, {}
    for card, run in zip(cards, runs):
        merged[card.id], startup[f"merged {card.id}"] = merged_answers(
            run, card, questions[card.id], args.max_tokens, args.out)

    served = plan(cards, runs, Path(manifests[0]["base_model"]))
    lora_opts = ServeOptions(model=Path(served.base), served_name=served.base_name, api_key=KEY,
                             port=free_port(), chat_template=served.chat_template,
                             lora_modules=served.adapters, max_lora_rank=served.max_lora_rank)
    process, startup["adapters"] = serving(lora_opts, args.out / "vllm-lora.log")
    lora, base = {}, {}
    try:
        from openai import NotFoundError, OpenAI

        listed = [m.id for m in OpenAI(base_url=lora_opts.base_url, api_key=KEY).models.list().data]
        for card in cards:
            # the shared template injects no default: send what the merged template injects
            lora[card.id] = ask_all(lora_opts, card.id, questions[card.id], args.max_tokens,
                                    card.default_system_prompt())
            base[card.id] = ask_all(lora_opts, served.base_name, questions[card.id], args.max_tokens)
        try:
            ask_all(lora_opts, "no-such-persona", questions[cards[0].id][:1], 4)
            unknown = "answered"
        except NotFoundError:
            unknown = "404"
    finally:
        stop(process)

    def names(card, qs: list[dict], answers: list[str]) -> float:
        hits = [getattr(card.name, q["lang"]) in a for q, a in zip(qs, answers)]
        return sum(hits) / len(hits)

    personas = {}
    for card in cards:
        qs, others = questions[card.id], [c for c in cards if c.id != card.id]
        personas[card.id] = {
            "questions": len(qs),
            "exact_match_lora_vs_merged":
                sum(a == b for a, b in zip(merged[card.id], lora[card.id])) / len(qs),
            "names_persona": {"merged": names(card, qs, merged[card.id]),
                              "lora": names(card, qs, lora[card.id]),
                              "base": names(card, qs, base[card.id])},
            # an adapter that answered with another persona's name would be a routing error
            "names_another_persona":
                {"lora": max((names(o, qs, lora[card.id]) for o in others), default=0.0)},
            "answers": [{"q": q["question"], "merged": m, "lora": lo, "base": b}
                        for q, m, lo, b in zip(qs, merged[card.id], lora[card.id], base[card.id])],
        }
    result = {"listed": listed, "unknown_model": unknown, "startup_s": startup, "personas": personas}
    (args.out / "lora_match.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"models listed: {listed}; unknown model: {unknown}")
    print("start-up: " + ", ".join(f"{k} {v:.0f} s" for k, v in startup.items()))
    for card_id, row in personas.items():
        n = row["questions"]
        print(f"{card_id}: exact match, LoRA vs merged: {row['exact_match_lora_vs_merged']:.0%} of {n}; "
              "names the persona: " + ", ".join(f"{k} {v:.0%}" for k, v in row["names_persona"].items())
              + f"; names another persona: {row['names_another_persona']['lora']:.0%}")
        for answer in row["answers"]:
            if answer["merged"] != answer["lora"]:
                print(f"  differs: {answer['q']!r}\n    merged: {answer['merged']!r}\n    lora:   {answer['lora']!r}")


if __name__ == "__main__":
    main()
