"""Time-to-identity: how long data + train + merge take, and what the model knows afterwards.

  .venv/bin/python benchmarks/time_to_identity.py [--card cards/xiaocong.yaml]
      [--config NAME:EPOCHS:REPLAY_RATIO[:PIPELINE OPTIONS] ...] [--seeds 42,1,2] [--out DIR]

Each config is one fresh `python -m persona.train.pipeline` run (the training env) of the card; the
baseline (today's default) runs beside the others in the same invocation. After each run the
merged model answers, greedily through its own chat template:
  identity   the held-out identity questions (persona/identity/heldout.py, worded unlike any
             training phrasing), judged by the evals' checks, in the language asked;
  leakage    per language, the unrelated yardstick (persona/identity/unrelated.py), the evals'
             control questions and the held-out general prompts: the share of answers that
             name the persona or its creator, with a 95 % Wilson interval;
  skills     the evals' general-skill questions: the base's right answers the persona lost,
             and the ones it gained, counted apart;
  agreement  the held-out general prompts: the share of answers whose first sentence is the
             base model's own.
Prints a table and writes results.json and a chart into --out. Train nothing else meanwhile:
two trainings on two cores are ~25x slower each.

One run of a recipe says little: the default trained with three seeds spread as far as five
rounds of recipes did (docs/training.md, sixth round). --seeds trains every config once per seed
(run NAME@SEED, `--seed SEED` added to its options) and prints, per config, each figure's range
over its seeds beside the runs.
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

# The baseline first: the default recipe (float32 on CPU), then bfloat16 autocast beside it.
DEFAULT_CONFIGS = ["default:1:0.15", "bfloat16:1:0.15:--precision bfloat16"]
FIRST_SENTENCE = re.compile(r"^.*?(?:[.!?。！？](?=\s|$)|\n|$)", re.S)


def first_sentence(text: str) -> str:
    return FIRST_SENTENCE.match(text.strip()).group(0).strip()


def measure(model: Path, base: str, card_path: Path) -> dict:
    """Runs in the training env: greedy answers of `model`, judged as the evals judge them."""
    from persona.evals.cases import CONTROLS
    from persona.evals.general_skills import GENERAL_SKILLS
    from persona.card import load_card
    from persona.identity.heldout import HELDOUT_QUESTIONS
    from persona.identity.judges import is_right, language_of, names_any, problems
    from persona.identity.names import claims_of_others
    from persona.identity.unrelated import UNRELATED
    from persona.stats import proportion
    from persona.train.general_prompts import split_prompts
    from persona.train.replay import base_answers, generate

    card = load_card(card_path)
    _, general = split_prompts()
    unrelated = ([{"lang": lang, "prompt": prompt} for lang, _, prompt in UNRELATED]
                 + [{"lang": lang, "prompt": question} for lang, question in CONTROLS] + general)
    skills = [{"lang": lang, "prompt": question} for lang, question, _ in GENERAL_SKILLS]
    identity = [{"lang": q["lang"], "prompt": q["question"]} for q in HELDOUT_QUESTIONS]
    answers = generate(str(model), identity + unrelated + skills, max_new_tokens=96,
                       batch_size=48, log=lambda _: None)
    identity_answers = answers[:len(identity)]
    unrelated_answers = answers[len(identity):len(identity) + len(unrelated)]
    skill_answers = answers[len(identity) + len(unrelated):]
    general_answers = unrelated_answers[-len(general):]

    failures = []
    for question, answer in zip(HELDOUT_QUESTIONS, identity_answers):
        lang = question["lang"]
        who = card.creator if question["kind"] == "creator" else card.name
        found = problems(answer["answer"], "stop" if answer["finished"] else "length",
                         (getattr(who, lang),), claims_of_others(), answer_lang=lang)
        if found:
            failures.append({"question": question["question"], "answer": answer["answer"],
                             "problems": found})
    own = (card.name.zh, card.name.en, card.creator.zh, card.creator.en)
    leaks = [a for a in unrelated_answers if names_any(a["answer"], own)]
    by_lang = {}
    for lang in ("zh", "en"):
        asked = [q for q in HELDOUT_QUESTIONS if q["lang"] == lang]
        wrong = sum(f["question"] in {q["question"] for q in asked} for f in failures)
        in_lang = sum(language_of(a["answer"]) == lang
                      for q, a in zip(HELDOUT_QUESTIONS, identity_answers) if q["lang"] == lang)
        mine = [a for a in unrelated_answers if a["lang"] == lang]
        by_lang[lang] = {"identity": proportion(len(asked) - wrong, len(asked)),
                         "answer_language": proportion(in_lang, len(asked)),
                         "leakage": proportion(sum(a in leaks for a in mine), len(mine))}
    base_skills = base_answers(base, skills, max_new_tokens=96, log=lambda _: None)
    right = [is_right(a["answer"], accepted) for a, (_, _, accepted) in zip(skill_answers, GENERAL_SKILLS)]
    base_right = [is_right(a["answer"], accepted)
                  for a, (_, _, accepted) in zip(base_skills, GENERAL_SKILLS)]
    reference = base_answers(base, general, log=lambda _: None)
    same_first = sum(first_sentence(a["answer"]) == first_sentence(b["answer"])
                     for a, b in zip(general_answers, reference))
    similarity = [SequenceMatcher(None, a["answer"][:200], b["answer"][:200]).ratio()
                  for a, b in zip(general_answers, reference)]
    return {
        "identity": round(1 - len(failures) / len(identity), 3),
        "leakage": round(len(leaks) / len(unrelated), 3),
        "by_lang": by_lang,
        "skills_right": sum(right), "skills_base_right": sum(base_right),
        "skills_lost": [q for (_, q, _), mine, theirs in zip(GENERAL_SKILLS, right, base_right)
                        if theirs and not mine],
        "skills_gained": [q for (_, q, _), mine, theirs in zip(GENERAL_SKILLS, right, base_right)
                          if mine and not theirs],
        "agreement_first_sentence": round(same_first / len(general), 3),
        "similarity": round(sum(similarity) / len(similarity), 3),
        "general_answers": [{"prompt": a["prompt"], "persona": a["answer"], "base": b["answer"]}
                            for a, b in zip(general_answers, reference)],
        "identity_failures": failures,
        "leaks": [{"prompt": a["prompt"], "answer": a["answer"]} for a in leaks],
        "prompts": {"identity": len(identity), "unrelated": len(unrelated),
                    "general": len(general), "skills": len(skills)},
    }


def run_config(name: str, epochs: int, ratio: float, card: Path, out: Path,
               extra: list[str] = ()) -> dict:
    from persona import base_models, envs
    from persona.card import load_card
    from persona.run_folder import RunFolder

    base = str(base_models.resolve(load_card(card).base))
    run = RunFolder(out / name)
    if run.manifest.exists():  # measured again without training; delete to retrain
        print(f"{name}: reusing the finished run in {run.root}")
    else:
        result = envs.run_module("train", "persona.train.pipeline", [
            "--card", str(card), "--base-model", base, "--out", str(run.root), "--epochs", str(epochs),
            "--replay-ratio", str(ratio), "--no-probe", "--no-eval-chat", *extra])
        if result.returncode != 0:
            raise SystemExit(f"{name}: training failed (exit {result.returncode})")
    manifest = run.read_manifest()
    metrics_file = run.root / "metrics.json"  # this benchmark's own file beside the run's
    measured = envs.run_module("train", "benchmarks.time_to_identity", [
        "--measure", str(run.merged), "--base", base, "--card", str(card),
        "--metrics", str(metrics_file)])
    if measured.returncode != 0:
        raise SystemExit(f"{name}: measuring failed (exit {measured.returncode})")
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    timings = manifest["timings_s"]
    return {"name": name, "epochs": epochs, "replay_ratio": ratio, "options": " ".join(extra),
            "samples": manifest["dataset"]["samples"],
            "replay_samples": manifest["dataset"].get("replay_samples", 0),
            "steps": len(manifest["loss_curve"]) and manifest["loss_curve"][-1]["step"],
            "final_loss": manifest["final_loss"],
            "wall_s": round(timings["total"]), "s_per_step": manifest.get("mean_s_per_step"),
            "omp_wait_policy": manifest.get("omp_wait_policy"),
            "precision": manifest["hyperparameters"].get("precision"),
            "data_s": timings.get("data"), "train_s": timings.get("train"),
            "merge_s": round(timings.get("convert", 0) + timings.get("merge", 0), 1), **metrics}


def expand(specs: list[str], seeds: list[int]) -> list[tuple[str, int, float, list[str]]]:
    """(name, epochs, replay ratio, pipeline options) per run: each spec once, or once per seed."""
    runs = []
    for spec in specs:
        name, epochs, ratio, *extra = spec.split(":", 3)
        options = extra[0].split() if extra else []
        if "--seed" in options and seeds:
            raise SystemExit(f"{name}: --seeds sets each run's seed; drop --seed from the config")
        for seed in seeds or [None]:
            runs.append((name if seed is None else f"{name}@{seed}", int(epochs), float(ratio),
                         options if seed is None else [*options, "--seed", str(seed)]))
    return runs


SPREAD = {"identity zh": ("zh", "identity"), "identity en": ("en", "identity"),
          "leak zh": ("zh", "leakage"), "leak en": ("en", "leakage")}


def spread(rows: list[dict]) -> dict[str, dict]:
    """Per config run over several seeds (rows named NAME@SEED): each figure's lowest and
    highest count over the seeds, out of the same total."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if "@" in row["name"]:
            groups.setdefault(row["name"].rsplit("@", 1)[0], []).append(row)
    table = {}
    for name, runs in groups.items():
        figures = {label: [run["by_lang"][lang][kind]["count"] for run in runs]
                   for label, (lang, kind) in SPREAD.items()}
        figures["skills lost"] = [len(run["skills_lost"]) for run in runs]
        table[name] = {"seeds": [run["name"].rsplit("@", 1)[1] for run in runs],
                       "totals": {label: runs[0]["by_lang"][lang][kind]["total"]
                                  for label, (lang, kind) in SPREAD.items()},
                       "range": {label: [min(v), max(v)] for label, v in figures.items()}}
    return table


def print_spread(table: dict[str, dict]) -> None:
    for name, part in table.items():
        cells = [f"{label} {low}-{high}" + (f"/{part['totals'][label]}" if label in part["totals"]
                                             else "")
                 for label, (low, high) in part["range"].items()]
        print(f"{name} over seeds {','.join(part['seeds'])}: " + ", ".join(cells))


def _cell(measure: dict) -> str:
    low, high = measure["interval"]
    return f"{measure['count']}/{measure['total']} ({low:.0%}-{high:.0%})"


def print_table(rows: list[dict]) -> None:
    """One line per config: time, then each quality measure with its n and 95 % interval."""
    head = (f"{'config':<16}{'samples':>8}{'steps':>6}{'train s':>8}{'wall s':>7}  "
            f"{'identity zh':<17}{'identity en':<17}{'in lang zh':<17}{'in lang en':<17}"
            f"{'leak zh':<18}{'leak en':<18}{'skills lost/gained':>19}")
    print(head)
    print("-" * len(head))
    for row in rows:
        zh, en = row["by_lang"]["zh"], row["by_lang"]["en"]
        print(f"{row['name']:<16}{row['samples']:>8}{row['steps']:>6}{row['train_s']:>8.0f}"
              f"{row['wall_s']:>7}  {_cell(zh['identity']):<17}{_cell(en['identity']):<17}"
              f"{_cell(zh['answer_language']):<17}{_cell(en['answer_language']):<17}"
              f"{_cell(zh['leakage']):<18}{_cell(en['leakage']):<18}"
              f"{len(row['skills_lost']):>10}/{len(row['skills_gained'])}"
              f" of {row['skills_base_right']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, default=ROOT / "cards" / "xiaocong.yaml")
    parser.add_argument("--config", action="append",
                        help="NAME:EPOCHS:REPLAY_RATIO[:PIPELINE OPTIONS] (repeatable; default "
                             f"{DEFAULT_CONFIGS}); e.g. 'lr1e-3:1:0.5:--lr 1e-3 --repeats 2'")
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")],
                        default=[], help="train each config once per seed, e.g. 42,1,2")
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
    for name, epochs, ratio, extra in expand(args.config or DEFAULT_CONFIGS, args.seeds):
        print(f"== {name}: {epochs} epoch(s), replay ratio {ratio} {' '.join(extra)}", flush=True)
        row = run_config(name, epochs, ratio, card, out, extra)
        rows = [old for old in rows if old["name"] != name] + [row]
        print_table(rows)
        print_spread(spread(rows))
        results.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n",
                                          encoding="utf-8")
    from persona.plots import grouped_bars

    groups = ["identity zh", "identity en", "leakage zh", "leakage en"]
    chart = grouped_bars(out / "time_to_identity.png", groups,
                         {row["name"]: [row["by_lang"][g.split()[1]][g.split()[0]]["rate"]
                                        for g in groups] for row in rows},
                         title="Held-out identity and leakage into unrelated answers, per language",
                         ylabel="share of prompts", ymax=1.15)
    print(f"\nresults: {results}\nchart: {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
