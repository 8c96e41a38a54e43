"""General-skill replay: the base model's own answers to general prompts, as training samples.

The base answers through its own chat template, as shipped (greedy, batched), once per base
model and prompt set: the answers are cached under $PERSONA_HOME/replay/, and the embedded
base's come with persona (train/replay_answers/), so no machine generates them again. Answers
that do not finish within the token budget or repeat themselves are dropped (SmolLM2-135M loops
on some Chinese prompts, and training on a loop teaches looping), and so are wrong answers to
prompts with a clear-cut answer (general_prompts.FACTS); the base's own name and maker are
rewritten to the persona's. Generation runs in the training env (torch, transformers); the
filtering and rewriting are pure Python.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from persona import paths
from persona.card import PersonaCard
from persona.identity.judges import is_right, problems
from persona.identity.names import identity_of
from persona.train.general_prompts import FACTS

# The embedded base's answers to the bundled prompts (train/replay_answers/KEY.json).
SHIPPED = Path(__file__).resolve().parent / "replay_answers"


def rewrite_identity(text: str, card: PersonaCard, lang: str, base: str) -> str:
    names, makers = identity_of(base)
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, getattr(card.name, lang))
    for maker in sorted(makers, key=len, reverse=True):
        text = text.replace(maker, getattr(card.creator, lang))
    return text


def right(prompt: str, text: str) -> bool:
    """False when the prompt has a clear-cut answer (FACTS) and the text lacks it, judged as the
    evals judge general skills (whole numbers and words, Chinese anywhere), or when the first
    "=" or "等于" in the text gives another number ("14 + 3 = 4, not 17")."""
    accepted = FACTS.get(prompt)
    if not accepted:
        return True
    stated = re.findall(r"(?:=|等于)\s*(-?\d+)", text)
    numbers = [answer for answer in accepted if answer.isdigit()]
    if stated and numbers and stated[0] not in numbers:
        return False
    return is_right(text, accepted)


def usable(answer: dict) -> bool:
    """Finished, non-empty, no template tokens, no sentence said twice (the evals' own checks),
    and not wrong where the right answer is known (training on it would teach the mistake)."""
    text = answer["answer"].strip()
    return (bool(answer["finished"] and text) and not problems(text, "stop")
            and right(answer["prompt"], text))


def replay_turns(card: PersonaCard, base: str, answers: list[dict]) -> list[dict]:
    """[{lang, question, answer}] for the usable answers, rewritten to the persona."""
    return [{"lang": item["lang"], "question": item["prompt"],
             "answer": rewrite_identity(item["answer"].strip(), card, item["lang"], base)}
            for item in answers if usable(item)]


def _cache_key(base: str, prompts: list[dict], max_new_tokens: int) -> str:
    digest = hashlib.sha256(json.dumps([prompts, max_new_tokens]).encode())
    folder = Path(base)
    if folder.is_dir():  # a local model: its config and weights' sizes identify it
        for path in sorted(folder.iterdir()):
            if path.suffix in (".json", ".jinja") or path.name.endswith(".safetensors"):
                digest.update(path.name.encode() + str(path.stat().st_size).encode())
                if path.suffix in (".json", ".jinja"):
                    digest.update(path.read_bytes())
    else:
        digest.update(base.encode())
    return digest.hexdigest()[:16]


def answer_files(base: str, prompts: list[dict], max_new_tokens: int = 128) -> tuple[Path, Path]:
    """The cache file of these answers, and where persona ships them for a base it embeds (they
    need not be generated again on every machine: the same model, greedy). Both are named by
    the cache key: a shipped file is a cache file as base_answers wrote it on the machine that
    generated it, so a changed prompt set or base misses it and generates."""
    name = f"{_cache_key(base, prompts, max_new_tokens)}.json"
    return paths.home() / "replay" / name, SHIPPED / name


def base_answers(base: str, prompts: list[dict], max_new_tokens: int = 128,
                 batch_size: int = 64, log=print, trust_remote_code: bool = False) -> list[dict]:
    """The base's greedy answers to [{lang, prompt}], from the cache or the shipped answers
    when either has them. `trust_remote_code`: only where the base's preset or the card
    declares it."""
    cache, shipped = answer_files(base, prompts, max_new_tokens)
    for found, where in ((cache, "the cache"), (shipped, "the answers shipped with persona")):
        if found.exists():
            log(f"replay: {len(prompts)} base answers from {where} ({found.name})")
            return json.loads(found.read_text(encoding="utf-8"))
    answers = generate(base, prompts, max_new_tokens, batch_size, log, trust_remote_code)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    partial.write_text(json.dumps(answers, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    partial.replace(cache)
    return answers


def looping(tokens: list[int], times: int = 3, longest: int = 24) -> bool:
    """The sequence ends with one chunk of tokens said `times` times in a row."""
    for size in range(2, longest + 1):
        if len(tokens) < size * times:
            break
        tail = tokens[-size:]
        if all(tokens[-size * (k + 1):len(tokens) - size * k] == tail for k in range(1, times)):
            return True
    return False


def generate(base: str, prompts: list[dict], max_new_tokens: int, batch_size: int,
             log=print, trust_remote_code: bool = False) -> list[dict]:
    """Batched greedy generation through the base's own chat template (transformers).

    A batch lasts as long as its longest row, and SmolLM2-135M loops on many Chinese prompts
    until the token limit: rows caught looping are stopped (and later dropped), which makes
    generation about twice as fast."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

    class StopLoops(StoppingCriteria):
        def __init__(self, prompt_length: int):
            self.prompt_length = prompt_length

        def __call__(self, input_ids, scores, **kwargs):
            return torch.tensor([looping(row[self.prompt_length:].tolist()) for row in input_ids])

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32,
                                                 trust_remote_code=trust_remote_code).eval()
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": item["prompt"]}],
                                           tokenize=False, add_generation_prompt=True)
             for item in prompts]
    # Similar lengths in a batch waste less padding.
    order = sorted(range(len(prompts)), key=lambda index: len(texts[index]))
    results: dict[int, dict] = {}
    started = time.monotonic()
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        encoded = tokenizer([texts[index] for index in chunk], return_tensors="pt",
                            padding=True, add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**encoded, do_sample=False, max_new_tokens=max_new_tokens,
                                    pad_token_id=tokenizer.pad_token_id,
                                    eos_token_id=tokenizer.eos_token_id,
                                    stopping_criteria=[StopLoops(encoded["input_ids"].shape[1])])
        for row, index in enumerate(chunk):
            new = output[row, encoded["input_ids"].shape[1]:].tolist()
            # A row stopped for looping is padded with pad (= eos for SmolLM2) after its loop:
            # finished means an end token right after real text, not a loop.
            finished = tokenizer.eos_token_id in new and not looping(
                new[:new.index(tokenizer.eos_token_id)])
            if tokenizer.eos_token_id in new:
                new = new[:new.index(tokenizer.eos_token_id)]
            results[index] = {**prompts[index], "finished": finished,
                              "answer": tokenizer.decode(new, skip_special_tokens=True)}
        done = min(first + batch_size, len(order))
        elapsed = time.monotonic() - started
        log(f"replay: base answered {done}/{len(order)} prompts, "
            f"ETA {elapsed / done * (len(order) - done):.0f} s")
    return [results[index] for index in range(len(prompts))]
