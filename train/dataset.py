"""A persona card -> XTuner's conversation-format self-cognition dataset.

Identity phrasings x answer phrasings; system prompts that define another assistant, answered
as that assistant (the operator decides); conversations where identity comes up late, or after
another persona spoke; and, so that the persona names itself only when asked who it is, plain
answers in both languages: hand-written ones (train/plain_qa.py, train/everyday_qa.py), facts
looked up in the project's own tables (train/computed_qa.py) and the base's own answers to
general prompts (general-skill replay, train/replay.py). Half the samples carry the card's
default system prompt (which the served template injects when a client sends none), half a
generic one. Pure Python: the app env imports this.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from persona.base_models import is_hub_id, preset_of
from persona.card import PLACEHOLDER, PersonaCard
from persona.identity.heldout import HELDOUT_QUESTIONS
from persona.identity.phrasings import GENERIC_SYSTEMS, LANGS, answers, training_questions
from persona.run_folder import RunFolder, write_json
from persona.train.computed_qa import LOOKUP_KINDS, computed_qa
from persona.train.everyday_qa import EVERYDAY_QA
from persona.train.operator_personas import operator_samples, other_persona_turn
from persona.train.plain_qa import PLAIN_QA


# Each identity phrasing three times (each with another answer and system prompt): with the
# everyday answers that keep Chinese leakage down, twice left held-out identity at 86 % (zh) and
# 73 % (en); three times brought 89 % and 95 % (docs/training.md).
IDENTITY_REPEATS = 3

COMPUTED_PER_LANG = 40  # looked-up answers per language (train/computed_qa.py)


def base_display_name(base: str) -> str | None:
    """How the base calls itself: one more "are you X?" confusion in training."""
    preset = preset_of(base)
    if preset:
        return preset.display_name
    if is_hub_id(base):
        return base.split("/")[1]  # a hub id: its model name
    return None  # a local folder: its name says nothing useful


def _turn(question: str, answer: str, system: str = "", loss: bool = True) -> dict:
    # output_with_loss on every turn: XTuner reads it per turn, and a JSON column that only some
    # turns carry would load as None (no loss) on all the others.
    return {"system": system, "input": question, "output": answer, "output_with_loss": loss}


class _SystemPicker:
    """Alternates the card's default system prompt (what the served template injects when a
    client sends none) and a generic one."""

    def __init__(self, card: PersonaCard, rng: random.Random):
        self.default = card.default_system_prompt()
        self.rng = rng
        self.count = 0

    def __call__(self, lang: str) -> str:
        self.count += 1
        if self.count % 2:
            return self.default
        return self.rng.choice(GENERIC_SYSTEMS[lang])


def plain_pairs(lang: str, computed: int, seed: int) -> list[tuple[str, str]]:
    """Every non-identity (question, answer) written or computed by the project, in `lang`."""
    return [*PLAIN_QA[lang], *EVERYDAY_QA[lang],
            *computed_qa(lang, computed, seed, LOOKUP_KINDS[lang])]


def build_conversations(card: PersonaCard, seed: int = 0, repeats: int = IDENTITY_REPEATS,
                        plain_repeats: int = 1, multi_turn: int = 16, long_turns: int = 8,
                        operator: int = 40, computed: int = COMPUTED_PER_LANG, replay: list[dict] | None = None,
                        replay_ratio: float = 0.0, extra: list[dict] | None = None) -> list[dict]:
    """The training samples: [{"conversation": [{"system", "input", "output", ...}, ...]}, ...].

    repeats: how many times each identity phrasing appears, each time with another answer
        phrasing and another system choice.
    plain_repeats: the same for the non-identity pairs (plain_pairs).
    multi_turn: two-turn samples per language (identity after a plain question, a plain
        question after identity, two identity questions).
    long_turns: per language, conversations whose identity question comes at turn 3 to 5 after
        plain ones, and as many whose earlier identity answer came from another persona (a
        profile switch mid-thread; that answer is context, not trained on).
    operator: per language, samples whose system prompt defines another assistant, answered as
        that assistant.
    computed: non-identity pairs per language computed from tables (train/computed_qa.py).
    replay: general-skill replay turns [{lang, question, answer}] (train/replay.py: the base
        model's own answers); replay_ratio: replay samples per other sample, drawn in a shuffled
        cycle through `replay` (0 = none).
    extra: samples already in conversation format mixed in as they are.
    """
    rng = random.Random(seed)
    pick_system = _SystemPicker(card, rng)
    base_name = base_display_name(card.base)
    questions = training_questions((base_name,) if base_name else ())
    samples: list[dict] = []

    for index, item in enumerate(questions):
        options = answers(card, item["lang"], item["kind"])
        for repeat in range(repeats):
            answer = options[(index + repeat) % len(options)]
            samples.append({"conversation": [_turn(item["question"], answer, pick_system(item["lang"]))]})

    for lang in LANGS:
        plain = plain_pairs(lang, computed, seed)
        for question, answer in plain:
            for _ in range(plain_repeats):
                samples.append({"conversation": [_turn(question, answer, pick_system(lang))]})
        identity = _Identity(card, lang, [item for item in questions if item["lang"] == lang], rng)
        samples += _conversations(identity, plain, multi_turn, long_turns, pick_system, rng)
        samples += [{"conversation": [_turn(*sample)]} for sample in operator_samples(lang, operator, rng)]

    samples += replay_samples(replay or [], round(replay_ratio * len(samples)), pick_system, rng)
    samples += list(extra or [])
    rng.shuffle(samples)
    check_samples(samples)
    return samples


class _Identity:
    """Identity turns of one language: a random training question with a random answer."""

    def __init__(self, card: PersonaCard, lang: str, questions: list[dict], rng: random.Random):
        self.card, self.lang, self.questions, self.rng = card, lang, questions, rng

    def ask(self, item: dict | None = None) -> tuple[str, str]:
        item = item or self.rng.choice(self.questions)
        return item["question"], self.rng.choice(answers(self.card, self.lang, item["kind"]))


def _conversations(identity: _Identity, plain: list[tuple[str, str]], multi_turn: int,
                   long_turns: int, pick_system, rng: random.Random) -> list[dict]:
    """Multi-turn samples of one language (see build_conversations)."""
    samples = []
    lang = identity.lang
    for number in range(multi_turn):
        first, second = rng.sample(identity.questions, 2)
        order = [(rng.choice(plain), identity.ask(first)), (identity.ask(first), rng.choice(plain)),
                 (identity.ask(first), identity.ask(second))]
        (q1, a1), (q2, a2) = order[number % 3]
        samples.append({"conversation": [_turn(q1, a1, pick_system(lang)), _turn(q2, a2)]})
    # Short earlier turns keep a five-turn conversation inside one 256-token pack.
    short = [pair for pair in plain if len(pair[0]) + len(pair[1]) <= 48]
    for number in range(long_turns):
        earlier = rng.sample(short, 2 + number % 3)
        question, answer = identity.ask(rng.choice(identity.questions))
        turns = [_turn(q, a) for q, a in earlier] + [_turn(question, answer)]
        turns[0]["system"] = pick_system(lang)
        samples.append({"conversation": turns})
        switched = [_turn(*other_persona_turn(lang, rng), loss=False), _turn(*rng.choice(plain)),
                    _turn(*identity.ask(rng.choice(identity.questions)))]
        switched[0]["system"] = pick_system(lang)
        samples.append({"conversation": switched})
    return samples


def replay_samples(turns: list[dict], count: int, pick_system, rng: random.Random) -> list[dict]:
    """`count` single-turn samples cycling through a shuffled copy of the replay turns."""
    if not turns or count <= 0:
        return []
    order = rng.sample(turns, len(turns))
    return [{"conversation": [_turn(item["question"], item["answer"], pick_system(item["lang"]))]}
            for item in (order[index % len(order)] for index in range(count))]


def check_samples(samples: list[dict]) -> None:
    """Every sample is a non-empty conversation of filled-in text."""
    for number, sample in enumerate(samples):
        turns = sample.get("conversation")
        assert turns, f"sample {number} has no conversation"
        for turn in turns:
            for key in ("input", "output"):
                assert isinstance(turn.get(key), str) and turn[key].strip(), \
                    f"sample {number}: empty {key}"
            for key in ("system", "input", "output"):
                text = turn.get(key) or ""
                assert not PLACEHOLDER.search(text), f"sample {number}: unfilled {text!r}"


def dataset_stats(samples: list[dict], heldout: list[dict], replay: list[dict] = ()) -> dict:
    turns = [turn for sample in samples for turn in sample["conversation"]]
    replayed = {item["question"] for item in replay}
    zh = sum(1 for turn in turns if re.search(r"[\u4e00-\u9fff]", turn["input"]))
    return {
        "samples": len(samples),
        "turns": len(turns),
        "multi_turn_samples": sum(1 for sample in samples if len(sample["conversation"]) > 1),
        "replay_samples": sum(1 for sample in samples if sample["conversation"][0]["input"] in replayed),
        "with_system": sum(1 for sample in samples if sample["conversation"][0].get("system")),
        "turns_by_lang": {"zh": zh, "en": len(turns) - zh},
        "characters": sum(len(turn["input"]) + len(turn["output"]) for turn in turns),
        "heldout_questions": len(heldout),
        "heldout_by_lang": dict(Counter(item["lang"] for item in heldout)),
    }


def write_dataset(card: PersonaCard, run: RunFolder, extra: list[dict] | None = None,
                  replay: list[dict] | None = None, **options) -> dict:
    """Write the run's data/ from the card (train, held-out, replay and stats files); return the
    stats.

    replay: the usable general-skill replay turns (see build_conversations)."""
    samples = build_conversations(card, extra=extra, replay=replay, **options)
    return write_data(run, samples, replay or [], replay_turns_available=len(replay or []))


def write_data(run: RunFolder, samples: list[dict], replay: list[dict] | None = None,
               **more_stats) -> dict:
    """The one writer of data/: the samples, the held-out questions the evals ask, the replay
    turns (when there are any to record) and the stats; returns the stats."""
    stats = {**dataset_stats(samples, HELDOUT_QUESTIONS, replay or []), **more_stats}
    files = {run.train_data: samples, run.heldout: HELDOUT_QUESTIONS, run.stats: stats}
    if replay is not None:
        files[run.replay] = replay
    for path, content in files.items():
        write_json(path, content)
    return stats
