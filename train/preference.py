"""A preference pass (ORPO, XTuner's `xtuner.model.orpo.ORPO`) from a finished run's adapter:
each pair is one question with the answer the persona should give and the one it should not.
For everyday questions the rejected answer is the persona's own introduction (what a leaking
persona answers, "不是的。我是…"); for identity questions it is an everyday answer. The
supervised loss on the chosen answers keeps what was learnt; the odds-ratio term pushes the
introduction away from questions that do not ask for it, which supervised data alone only does
indirectly. Pure Python here; the builders import XTuner only when the config is built.
"""

from __future__ import annotations

import random

from persona.card import PersonaCard
from persona.identity.phrasings import GENERIC_SYSTEMS, LANGS, answers, training_questions
from persona.train.chat_template import chatml_template


def preference_pairs(card: PersonaCard, plain: dict[str, list[tuple[str, str]]],
                     base_name: str | None, seed: int, identity_repeats: int = 2,
                     plain_per_lang: int | None = None) -> list[dict]:
    """[{"system", "question", "chosen", "rejected"}], shuffled. `plain`: per language, the
    everyday (question, answer) pairs; every identity kind's answers serve as the rejected
    introductions."""
    rng = random.Random(seed)
    systems = {lang: [card.default_system_prompt(), *GENERIC_SYSTEMS[lang]] for lang in LANGS}
    questions = training_questions((base_name,) if base_name else ())
    kinds = sorted({item["kind"] for item in questions})
    pairs = []
    for lang in LANGS:
        intros = [text for kind in kinds for text in answers(card, lang, kind)]
        everyday = list(plain[lang])
        if plain_per_lang is not None and len(everyday) > plain_per_lang:
            everyday = rng.sample(everyday, plain_per_lang)
        for question, answer in everyday:
            pairs.append({"system": rng.choice(systems[lang]), "question": question,
                          "chosen": answer, "rejected": rng.choice(intros)})
        mine = [item for item in questions if item["lang"] == lang]
        for item in mine * identity_repeats:
            pairs.append({"system": rng.choice(systems[lang]), "question": item["question"],
                          "chosen": rng.choice(answers(card, lang, item["kind"])),
                          "rejected": rng.choice(everyday)[1]})
    rng.shuffle(pairs)
    return pairs


def build_orpo(start_adapter: str | None = None, **kwargs):
    """XTuner's ORPO (a SupervisedFinetune), built after the CPU patches, its LoRA weights the
    start adapter's."""
    from persona.train.cpu_patches import apply, with_start_adapter

    apply()
    from xtuner.model.orpo import ORPO

    return with_start_adapter(ORPO(**kwargs), start_adapter)


def load_chatml_tokenizer(**kwargs):
    """The base's tokenizer speaking the training template (no default system block): XTuner's
    preference dataset renders pairs with the tokenizer's chat template."""
    from persona.train.cpu_patches import load_tokenizer

    tokenizer = load_tokenizer(**kwargs)
    tokenizer.chat_template = chatml_template()
    return tokenizer
