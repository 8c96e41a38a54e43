"""Could a gate in front of the persona stop its leaks? Three signals a server could route on,
measured on the evals' held-out identity questions and their leakage yardstick:

1. the question's words: a logistic classifier on character n-grams, trained on what training
   has (the identity phrasings against the everyday, looked-up and plain questions), asked
   whether each held-out question is about identity and each unrelated prompt is not;
2. the persona's own certainty (with --run): its greedy answers (transformers, the run's chat
   template, which adds the card's system prompt as the server does), and for each answer that
   names the persona or its creator the log-probability of that name's first token and the
   lowest one up to it, identity answers against leaks;
3. what the model makes of the question (with --probe): a logistic probe on each layer's hidden
   state at the last prompt position (the question in the model's chat template, with the
   default system prompt that template adds), fitted on the same training questions, of the
   card's base and (with --run) of the persona; with --pool mean, on the mean of each layer's
   states over the question's own tokens (the question alone, no template) instead.

    .venv/bin/python benchmarks/identity_gate.py [--run RUN --card CARD] [--probe [--pool mean]] \
        --result F.json

The second and third parts run in the serving environment (transformers; `persona setup`
builds it).
docs/training.md, "Sixth round", says what the figures showed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

THRESHOLDS = (0.1, 0.2, 0.3, 0.5)
MAX_TOKENS = 48


def ngrams(text: str) -> list[str]:
    """Characters 1-3 (with ^ and $ at the ends) and, for Latin text, whole words."""
    folded = "^" + re.sub(r"\s+", " ", text.lower()) + "$"
    grams = [folded[i:i + n] for n in (1, 2, 3) for i in range(len(folded) - n + 1)]
    return grams + ["w:" + word for word in re.findall(r"[a-z']+", folded)]


def training_questions() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(lang, question) pairs training has: identity phrasings, and the other questions."""
    from persona.identity.phrasings import LANGS, training_questions as identity
    from persona.train.computed_qa import computed_qa
    from persona.train.everyday_qa import EVERYDAY_QA
    from persona.train.plain_qa import PLAIN_QA

    positive = [(q["lang"], q["question"]) for q in identity()]
    negative = [(lang, question) for lang in LANGS
                for question, _ in EVERYDAY_QA[lang] + computed_qa(lang, 400) + PLAIN_QA[lang]]
    return positive, negative


def fit_dense(x, y, rate: float, l2: float, steps: int):
    """L2 logistic regression by gradient descent, classes weighted to balance: (w, b)."""
    import numpy as np

    weight = np.where(y == 1, (y == 0).sum() / (y == 1).sum(), 1.0)
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = (p - y) * weight
        w -= rate * (x.T @ g / len(y) + l2 * w)
        b -= rate * g.mean()
    return w, b


def fit(positive: list[str], negative: list[str], steps: int = 3000):
    """Logistic regression on normalised n-gram counts."""
    import numpy as np

    vocab: dict[str, int] = {}
    for text in positive + negative:
        for gram in ngrams(text):
            vocab.setdefault(gram, len(vocab))

    def vector(text: str):
        row = np.zeros(len(vocab))
        for gram in ngrams(text):
            if gram in vocab:
                row[vocab[gram]] += 1
        norm = np.linalg.norm(row)
        return row / norm if norm else row

    x = np.array([vector(t) for t in positive + negative])
    y = np.array([1.0] * len(positive) + [0.0] * len(negative))
    w, b = fit_dense(x, y, rate=0.5, l2=1e-4, steps=steps)
    return lambda text: float(1 / (1 + np.exp(-(vector(text) @ w + b))))


def classifier_part() -> dict:
    from persona.identity.heldout import HELDOUT_QUESTIONS
    from persona.identity.unrelated import UNRELATED
    from persona.stats import proportion

    positive, negative = training_questions()
    score = fit([q for _, q in positive], [q for _, q in negative])
    held = [(q["lang"], q["question"], score(q["question"])) for q in HELDOUT_QUESTIONS]
    unrelated = [(lang, prompt, score(prompt)) for lang, _, prompt in UNRELATED]
    rows = []
    for threshold in THRESHOLDS:
        for lang in ("zh", "en"):
            hits = [s > threshold for l, _, s in held if l == lang]
            false = [s > threshold for l, _, s in unrelated if l == lang]
            rows.append({"threshold": threshold, "lang": lang,
                         "heldout_identity_recalled": proportion(sum(hits), len(hits)),
                         "unrelated_flagged": proportion(sum(false), len(false))})
    return {"trained_on": {"identity": len(positive), "other": len(negative)}, "rows": rows,
            "missed_at_0.2": [q for _, q, s in held if s <= 0.2],
            "scores": {q: round(s, 3) for _, q, s in held + unrelated}}


def load_model(model_dir: Path):
    """In the serving env: (tokenizer, model), float32, padding on the left for batches."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    return tokenizer, AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def encode_questions(tokenizer, questions: list[str]):
    """Each question as the user's turn of the model's chat template (which adds the model's
    default system prompt, as the server does), ready for its answer; one padded batch."""
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in questions]
    return tokenizer(texts, return_tensors="pt", padding=True)


def generate(run_dir: Path, card_path: Path) -> list[dict]:
    """In the serving env: greedy answers with each token's log-probability."""
    import torch

    from persona.card import load_card
    from persona.identity.heldout import HELDOUT_QUESTIONS
    from persona.identity.unrelated import UNRELATED
    from persona.run_folder import RunFolder

    card = load_card(card_path)
    words = tuple(getattr(card.name, l) for l in ("zh", "en")) + tuple(
        getattr(card.creator, l) for l in ("zh", "en"))
    tokenizer, model = load_model(RunFolder(run_dir).merged)
    items = ([("identity", q["lang"], q["question"]) for q in HELDOUT_QUESTIONS]
             + [("unrelated", lang, prompt) for lang, _, prompt in UNRELATED])
    answers = []
    for start in range(0, len(items), 16):
        batch = items[start:start + 16]
        encoded = encode_questions(tokenizer, [q for _, _, q in batch])
        with torch.no_grad():
            out = model.generate(**encoded, max_new_tokens=MAX_TOKENS, do_sample=False,
                                 output_scores=True, return_dict_in_generate=True)
        logp = torch.stack(out.scores, 1).log_softmax(-1)
        prompt_len = encoded.input_ids.shape[1]
        for row, (kind, lang, question) in enumerate(batch):
            ids = out.sequences[row, prompt_len:].tolist()
            prefixes, lps = [], []
            for step, token in enumerate(ids):
                if token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                    break
                prefixes.append(tokenizer.decode(ids[:step + 1]))
                lps.append(logp[row, step, token].item())
            answers.append({"kind": kind, "lang": lang, "question": question,
                            "answer": prefixes[-1] if prefixes else "",
                            **name_certainty(prefixes, lps, words)})
    return answers


# The probe's questions in the order their hidden states are written and read back.
PROBE_KINDS = ("identity", "other", "heldout", "unrelated")


def probe_questions() -> dict[str, list[tuple[str, str]]]:
    """(lang, question) per kind of PROBE_KINDS: what the probe is fitted on and judged on."""
    from persona.identity.heldout import HELDOUT_QUESTIONS
    from persona.identity.unrelated import UNRELATED

    positive, negative = training_questions()
    return {"identity": positive, "other": negative,
            "heldout": [(q["lang"], q["question"]) for q in HELDOUT_QUESTIONS],
            "unrelated": [(lang, prompt) for lang, _, prompt in UNRELATED]}


POOLS = ("last", "mean")


def hidden_states(model_dir: Path, questions: list[str], pool: str = "last"):
    """In the serving env: each layer's hidden state at the last prompt position (where the
    answer's first token is predicted), or with pool "mean" the mean of each layer's states
    over the tokens of the question alone. Shape (layers + 1, questions, hidden)."""
    import numpy as np
    import torch

    tokenizer, model = load_model(model_dir)
    if pool == "mean":
        tokenizer.padding_side = "right"  # each question's positions count from 0
    batches = []
    for start in range(0, len(questions), 32):
        batch = questions[start:start + 32]
        encoded = (encode_questions(tokenizer, batch) if pool == "last"
                   else tokenizer(batch, return_tensors="pt", padding=True))
        with torch.no_grad():
            layers = model(**encoded, output_hidden_states=True).hidden_states
        if pool == "last":
            batches.append(np.stack([layer[:, -1, :].numpy() for layer in layers]))
        else:
            mask = encoded.attention_mask.unsqueeze(-1).float()
            batches.append(np.stack([((layer * mask).sum(1) / mask.sum(1)).numpy()
                                     for layer in layers]))
    return np.concatenate(batches, axis=1)


def recall_at_most_flagged(identity, unrelated, flagged: int) -> int:
    """Identity questions scored above the (flagged + 1)-th highest unrelated score: the recall
    of a threshold that lets through at most `flagged` unrelated prompts. The threshold is read
    off the yardstick itself, so the figure is a best case."""
    ceiling = sorted(unrelated, reverse=True)[flagged]
    return int(sum(s > ceiling for s in identity))


def probe_part(states, questions: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """Per layer and language: a logistic probe fitted on the training questions' states
    (standardised), its recall of the held-out identity questions and the unrelated prompts
    it flags, at 0.5 and where it flags at most 2 of them."""
    import numpy as np

    counts = {kind: len(items) for kind, items in questions.items()}
    ends = np.cumsum([counts[kind] for kind in PROBE_KINDS])
    y = np.array([1.0] * counts["identity"] + [0.0] * counts["other"])
    rows = []
    for layer, x in enumerate(states):
        train, held, unrelated = x[:ends[1]], x[ends[1]:ends[2]], x[ends[2]:]
        mean, spread = train.mean(0), train.std(0) + 1e-6
        w, b = fit_dense((train - mean) / spread, y, rate=0.1, l2=1e-3, steps=2000)
        held_scores, unrelated_scores = (1 / (1 + np.exp(-(((z - mean) / spread) @ w + b)))
                                         for z in (held, unrelated))
        for lang in ("zh", "en"):
            h = [s for s, (l, _) in zip(held_scores, questions["heldout"]) if l == lang]
            u = [s for s, (l, _) in zip(unrelated_scores, questions["unrelated"]) if l == lang]
            rows.append({"layer": layer, "lang": lang, "heldout": len(h), "unrelated": len(u),
                         "recalled_at_0.5": int(sum(s > 0.5 for s in h)),
                         "flagged_at_0.5": int(sum(s > 0.5 for s in u)),
                         "recalled_flagging_at_most_2": recall_at_most_flagged(h, u, 2)})
    return rows


def name_certainty(prefixes: list[str], logprobs: list[float], words: tuple[str, ...]) -> dict:
    """Whether the answer names one of `words`, and how sure the model was of that name's first
    token (prefixes[i]: the answer decoded up to token i, whole characters)."""
    from persona.identity.judges import names_any

    named = next((i for i, prefix in enumerate(prefixes) if names_any(prefix, words)), None)
    if named is None:
        return {"names": False}
    first = named  # back to the latest token from which the text holds the whole name
    while first > 0 and not names_any(prefixes[named][len(prefixes[first - 1]):], words):
        first -= 1
    return {"names": True, "name_logprob": round(logprobs[first], 3),
            "lowest_logprob_to_name": round(min(logprobs[:named + 1]), 3)}


def certainty_part(answers: list[dict]) -> dict:
    from persona.stats import proportion

    out: dict = {"answers": answers, "by_lang": {}}
    for lang in ("zh", "en"):
        identity = [a for a in answers if a["kind"] == "identity" and a["lang"] == lang]
        unrelated = [a for a in answers if a["kind"] == "unrelated" and a["lang"] == lang]
        leaks = [a for a in unrelated if a["names"]]
        named = sorted(a["name_logprob"] for a in identity if a["names"])
        out["by_lang"][lang] = {
            "identity_named": proportion(len(named), len(identity)),
            "leaks": proportion(len(leaks), len(unrelated)),
            "identity_name_logprob": named,
            "leak_name_logprob": sorted(a["name_logprob"] for a in leaks),
        }
    return out


def in_serving_env(args: argparse.Namespace, *extra: str) -> None:
    """This script again, inside the serving environment (transformers 5)."""
    from persona import envs

    command = [str(envs.python("serve")), __file__, "--card", str(args.card.resolve()),
               "--result", str(args.result), *extra]
    subprocess.run(command, cwd=REPO, env=envs.command_env("serve"), check=True)


def probed_models(args: argparse.Namespace) -> dict[str, Path]:
    """The card's base, and the run's merged model when there is a run."""
    from persona.base_models import resolve
    from persona.card import load_card
    from persona.run_folder import RunFolder

    models = {"base": Path(resolve(load_card(args.card).base))}
    if args.run:
        models["persona"] = RunFolder(args.run).merged
    return models


def print_summary(result: dict) -> None:
    for row in result["classifier"]["rows"]:
        recalled, flagged = row["heldout_identity_recalled"], row["unrelated_flagged"]
        print(f"classifier > {row['threshold']} ({row['lang']}): held-out identity "
              f"{recalled['count']}/{recalled['total']}, "
              f"unrelated flagged {flagged['count']}/{flagged['total']}")
    for lang, part in result.get("certainty", {}).get("by_lang", {}).items():
        print(f"certainty ({lang}): identity name log-prob {part['identity_name_logprob'][:6]}..., "
              f"leaks {part['leak_name_logprob']}")
    for model, rows in result.get("probe", {}).items():
        for lang in ("zh", "en"):
            mine = [r for r in rows if r["lang"] == lang]
            best = max(mine, key=lambda r: r["recalled_flagging_at_most_2"])
            last = mine[-1]
            print(f"probe on the {model}'s states ({lang}, {last['heldout']} held-out, "
                  f"{last['unrelated']} unrelated): last layer {last['recalled_at_0.5']} recalled "
                  f"/ {last['flagged_at_0.5']} flagged at 0.5, "
                  f"{last['recalled_flagging_at_most_2']} recalled flagging at most 2; "
                  f"best layer {best['layer']}: {best['recalled_flagging_at_most_2']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished run: also its certainty")
    parser.add_argument("--card", type=Path, default=REPO / "cards" / "xiaocong.yaml")
    parser.add_argument("--probe", action="store_true",
                        help="also a linear probe on the hidden states of the card's base "
                             "(and of the run's merged model, with --run)")
    parser.add_argument("--pool", choices=POOLS, default="last",
                        help="the probe's states: at the last prompt position, or the mean over "
                             "the question's tokens")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--answers-inside", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--states-inside", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.answers_inside:
        args.answers_inside.write_text(json.dumps(generate(args.run, args.card),
                                                  ensure_ascii=False))
        return
    if args.states_inside:
        import numpy as np

        by_kind = probe_questions()
        questions = [q for kind in PROBE_KINDS for _, q in by_kind[kind]]
        np.save(args.states_inside, hidden_states(args.model, questions, args.pool))
        return
    command = "benchmarks/identity_gate.py" + (" --run RUN" if args.run else "")
    if args.probe:
        command += " --probe" + (f" --pool {args.pool}" if args.pool != "last" else "")
    result = {"command": command,
              "card": args.card.name, "classifier": classifier_part()}
    if args.run:
        scratch = args.result.with_suffix(".answers.tmp")
        in_serving_env(args, "--run", str(args.run.resolve()),
                       "--answers-inside", str(scratch.resolve()))
        result["certainty"] = certainty_part(json.loads(scratch.read_text()))
        scratch.unlink()
    if args.probe:
        import numpy as np

        result["probe"], questions = {}, probe_questions()
        for name, folder in probed_models(args).items():
            with tempfile.TemporaryDirectory() as scratch:  # ~140 MB of states, kept out of docs/
                states = Path(scratch) / "states.npy"
                in_serving_env(args, "--model", str(folder), "--states-inside", str(states),
                               "--pool", args.pool)
                result["probe"][name] = probe_part(np.load(states), questions)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print_summary(result)


if __name__ == "__main__":
    main()
