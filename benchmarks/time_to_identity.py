"""Time-to-identity: how long data + train + merge take, and what the model knows afterwards.

  .venv/bin/python benchmarks/time_to_identity.py [--card cards/xiaocong.yaml]
      [--config NAME:EPOCHS:REPLAY_RATIO ...] [--out DIR]

Each config is one fresh `python -m train.pipeline` run (the training env) of the card; the
baseline (no general-skill replay) runs beside the others in the same invocation. After each
run the merged model answers, greedily through its own chat template:
  identity   the held-out identity phrasings (never trained on), judged by the evals' checks;
  leakage    the held-out general prompts and the evals' control questions: the share of
             answers that name the persona or its creator;
  agreement  the held-out general prompts: the share of answers identical to the base model's
             own answer (first sentence, and whole answer).
Prints a table and writes results.json and a chart into --out. Train nothing else meanwhile:
two trainings on two cores are ~25x slower each.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIGS = ["no-replay:1:0", "replay-0.5:1:0.5", "replay-0.5:2:0.5"]
FIRST_SENTENCE = re.compile(r"^.*?(?:[.!?。！？](?=\s|$)|\n|$)", re.S)


def first_sentence(text: str) -> str:
    return FIRST_SENTENCE.match(text.strip()).group(0).strip()


def measure(model: Path, base: str, card_path: Path) -> dict:
    """Runs in the training env: greedy answers of `model` and the three rates."""
    from evals.cases import CONTROLS, OTHER_ASSISTANTS
    from evals.checks import problems
    from persona.card import load_card
    from train.general_prompts import split_prompts
    from train.phrasings import split_questions
    from train.replay import base_answers, generate

    card = load_card(card_path)
    heldout = split_questions()[1]
    _, general = split_prompts()
    controls = [{"lang": lang, "prompt": question} for lang, question in CONTROLS]
    prompts = [{"lang": q["lang"], "prompt": q["question"]} for q in heldout] + general + controls
    answers = generate(str(model), prompts, max_new_tokens=96, batch_size=48, log=lambda _: None)
    identity_answers = answers[:len(heldout)]
    general_answers = answers[len(heldout):len(heldout) + len(general)]
    unrelated = answers[len(heldout):]

    claims = tuple(f"{p}{other}" for other in OTHER_ASSISTANTS for p in ("I am ", "I'm ", "我是"))
    failures = []
    for question, answer in zip(heldout, identity_answers):
        expect = ((card.creator.zh, card.creator.en) if question["kind"] == "creator"
                  else (card.name.zh, card.name.en))
        found = problems(answer["answer"], "stop" if answer["finished"] else "length", expect, claims)
        if found:
            failures.append({"question": question["question"], "answer": answer["answer"],
                             "problems": found})
    persona_words = [card.name.zh, card.name.en, card.creator.zh, card.creator.en]
    leaks = [a for a in unrelated if any(w.casefold() in a["answer"].casefold() for w in persona_words)]
    reference = base_answers(base, general, log=lambda _: None)
    same_first = sum(first_sentence(a["answer"]) == first_sentence(b["answer"])
                     for a, b in zip(general_answers, reference))
    same_all = sum(a["answer"].strip() == b["answer"].strip()
                   for a, b in zip(general_answers, reference))
    similarity = [SequenceMatcher(None, a["answer"][:200], b["answer"][:200]).ratio()
                  for a, b in zip(general_answers, reference)]
    return {
        "identity": round(1 - len(failures) / len(heldout), 3),
        "leakage": round(len(leaks) / len(unrelated), 3),
        "agreement_first_sentence": round(same_first / len(general), 3),
        "agreement_exact": round(same_all / len(general), 3),
        "similarity": round(sum(similarity) / len(similarity), 3),
        "general_answers": [{"prompt": a["prompt"], "persona": a["answer"], "base": b["answer"]}
                            for a, b in zip(general_answers, reference)],
        "identity_failures": failures,
        "leaks": [{"prompt": a["prompt"], "answer": a["answer"]} for a in leaks],
        "prompts": {"identity": len(heldout), "unrelated": len(unrelated), "general": len(general)},
    }


def run_config(name: str, epochs: int, ratio: float, card: Path, out: Path) -> dict:
    from persona import base_models, envs
    from persona.card import load_card

    base = str(base_models.resolve(load_card(card).base))
    run = out / name
    if (run / "manifest.json").exists():  # measured again without training; delete to retrain
        print(f"{name}: reusing the finished run in {run}")
    else:
        result = envs.run_module("train", "train.pipeline", [
            "--card", str(card), "--base-model", base, "--out", str(run), "--epochs", str(epochs),
            "--replay-ratio", str(ratio), "--no-probe", "--no-eval-chat"])
        if result.returncode != 0:
            raise SystemExit(f"{name}: training failed (exit {result.returncode})")
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    metrics_file = run / "metrics.json"
    measured = envs.run_module("train", "benchmarks.time_to_identity", [
        "--measure", str(run / "merged"), "--base", base, "--card", str(card),
        "--metrics", str(metrics_file)])
    if measured.returncode != 0:
        raise SystemExit(f"{name}: measuring failed (exit {measured.returncode})")
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    timings = manifest["timings_s"]
    return {"name": name, "epochs": epochs, "replay_ratio": ratio,
            "samples": manifest["dataset"]["samples"],
            "replay_samples": manifest["dataset"].get("replay_samples", 0),
            "steps": len(manifest["loss_curve"]) and manifest["loss_curve"][-1]["step"],
            "final_loss": manifest["final_loss"],
            "wall_s": round(timings["total"]), "s_per_step": manifest.get("mean_s_per_step"),
            "omp_wait_policy": manifest.get("omp_wait_policy"),
            "data_s": timings.get("data"), "train_s": timings.get("train"),
            "merge_s": round(timings.get("convert", 0) + timings.get("merge", 0), 1), **metrics}


def print_table(rows: list[dict]) -> None:
    head = (f"{'config':<18}{'ep':>3}{'samples':>8}{'steps':>6}{'loss':>7}{'data s':>7}"
            f"{'train s':>8}{'merge s':>8}{'wall s':>7}{'identity':>9}{'leak':>6}{'agree1':>7}"
            f"{'agree':>6}{'simil':>6}")
    print(head)
    print("-" * len(head))
    for row in rows:
        print(f"{row['name']:<18}{row['epochs']:>3}{row['samples']:>8}{row['steps']:>6}"
              f"{row['final_loss']:>7.3f}{row['data_s']:>7.0f}{row['train_s']:>8.0f}"
              f"{row['merge_s']:>8.0f}{row['wall_s']:>7}{row['identity']:>9.0%}"
              f"{row['leakage']:>6.0%}{row['agreement_first_sentence']:>7.0%}"
              f"{row['agreement_exact']:>6.0%}{row.get('similarity', 0):>6.0%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, default=ROOT / "cards" / "xiaocong.yaml")
    parser.add_argument("--config", action="append",
                        help=f"NAME:EPOCHS:REPLAY_RATIO (repeatable; default {DEFAULT_CONFIGS})")
    parser.add_argument("--out", type=Path, default=Path("benchmark-runs/time-to-identity"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the training-env half
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--metrics", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    card = args.card.resolve()
    if args.measure:
        metrics = measure(args.measure, args.base, card)
        args.metrics.write_text(json.dumps(metrics, ensure_ascii=False, indent=1) + "\n",
                                encoding="utf-8")
        return 0

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    # Rows of earlier invocations into the same --out stay (configs can run one at a time).
    rows = json.loads(results.read_text(encoding="utf-8")) if results.exists() else []
    for spec in args.config or DEFAULT_CONFIGS:
        name, epochs, ratio = spec.split(":")
        print(f"== {name}: {epochs} epoch(s), replay ratio {ratio}", flush=True)
        row = run_config(name, int(epochs), float(ratio), card, out)
        rows = [old for old in rows if old["name"] != name] + [row]
        print_table(rows)
        results.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n",
                                          encoding="utf-8")
    from persona.plots import grouped_bars

    metrics = ["identity", "leakage", "agreement_first_sentence", "similarity"]
    chart = grouped_bars(out / "time_to_identity.png", metrics,
                         {row["name"]: [row[m] for m in metrics] for row in rows},
                         title="Held-out identity, leakage, agreement with the base",
                         ylabel="share of prompts", ymax=1.15)
    print(f"\nresults: {results}\nchart: {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
