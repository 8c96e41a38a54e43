"""`persona export`: the trained persona as one file for the engines CPU users run.

`--format gguf` converts the run's merged model with llama.cpp's own converter (in the gguf
environment, compiled once) into RUN/export/<id>-<quant>.gguf, the chat template and default
system prompt inside, writes an Ollama Modelfile beside it, then loads the file with llama.cpp
and asks it the run's held-out identity questions: the share it answers as the persona is
printed with its interval, and every answer is kept beside the file (<id>-<quant>.check.json).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from persona import envs, services
from persona.card import PersonaCard, load_card
from persona.commands import DEFAULT_CARD, CommandError, _run_folder
from persona.identity.judges import problems
from persona.identity.names import claims_of_others, expected_name
from persona.run_folder import RunFolder, check_request, write_json
from persona.serve.gguf import DEFAULT_QUANT, check_choice, gguf_name, modelfile
from persona.stats import describe, proportion
from persona.train.chat_template import bos_of

MAX_TOKENS = 64  # as the evals ask identity questions


def check_file(gguf: Path) -> Path:
    """What llama.cpp answered with one exported file (an export per quantisation)."""
    return gguf.with_suffix(".check.json")


def answers_as_itself(card: PersonaCard, item: dict, answer: str) -> bool:
    """An identity answer in substance: it names whom the question asks about (the persona, or
    its maker) and claims to be no other assistant. Format (looping, running on) is not judged:
    two engines cut a long answer at different points."""
    return not problems(answer, None, expect_any=(expected_name(card, item["lang"], item["kind"]),),
                        forbid=claims_of_others(), strict=False)


def _convert(prefix: Path, run: RunFolder, target: Path, quant: str) -> None:
    """llama.cpp's converter into target.partial, renamed once whole (an export stopped midway
    leaves no file that looks finished)."""
    from persona.serve.gguf_install import converter

    partial = target.with_name(target.name + ".partial")
    log = run.exports / "convert.log"
    log.unlink(missing_ok=True)
    command = [str(envs.python("gguf")), str(converter(prefix)), str(run.merged),
               "--outfile", str(partial), "--outtype", quant]
    with services.Children() as children:
        code = children.add(services.spawn(command, envs.command_env("gguf"), log)).wait()
    if code != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise CommandError(f"llama.cpp's converter failed on {run.merged} (exit {code}); "
                           f"see {log}:\n{services.tail(log, 15)}")
    partial.replace(target)


def _ask(gguf: Path, conversations: list[list[dict]], scratch: Path) -> dict:
    """llama.cpp's greedy answers and the chat template it found in the file."""
    asked, answered = scratch / "conversations.json", scratch / "answers.json"
    asked.write_text(json.dumps(conversations, ensure_ascii=False), encoding="utf-8")
    code = services.run([str(envs.python("gguf")), "-m", "persona.serve.llama_cpp_answers",
                         str(gguf), str(asked), str(answered), "--max-tokens", str(MAX_TOKENS)],
                        envs.command_env("gguf"))
    if code != 0 or not answered.is_file():
        raise CommandError(f"llama.cpp could not answer with {gguf} (exit {code}); the file may "
                           f"be damaged: run `persona export` again")
    return json.loads(answered.read_text(encoding="utf-8"))


def export(card: Path = DEFAULT_CARD, format: str = "gguf", quant: str = DEFAULT_QUANT,
           out: Path | None = None) -> Path:
    """Write the trained persona as a GGUF file for llama.cpp and Ollama (a Modelfile beside it) and check that llama.cpp answers as the persona.

    Args:
        card: persona card YAML
        format: gguf
        quant: q8_0 (smallest, nearly f32's answers), f16 or f32
        out: run folder (default: the card's run folder in the cache)
    """
    check_choice(format, quant)
    persona = load_card(card)
    run = _run_folder(persona, out)
    if not run.finished():
        again = f"persona train --card {card}" + (f" --out {out}" if out else "")
        raise CommandError(f"{run.root} holds no trained persona (no manifest.json and "
                           f"merged/): train it first with `{again}`")
    check_request(run, persona)
    target, score = export_run(persona, run, quant)
    size = target.stat().st_size / 2**20
    print(f"persona: {target} ({size:.0f} MiB)\n"
          f"  llama.cpp answers as {persona.name.en}: {describe(score)} of the held-out identity "
          f"questions (every answer: {check_file(target)})\n"
          f"  llama.cpp: llama-cli -m {target} -cnv\n"
          f"  Ollama:    cd {run.exports} && ollama create {persona.id} -f Modelfile && "
          f"ollama run {persona.id}")
    return target


def export_run(persona: PersonaCard, run: RunFolder, quant: str) -> tuple[Path, dict]:
    """The finished run's GGUF file (written, checked, the Modelfile beside it) and the share of
    held-out identity questions llama.cpp answered as the persona."""
    with envs.using("gguf", "persona export") as prefix, run.lock("export", shared=True):
        if not run.finished():  # a retraining began meanwhile
            raise CommandError(f"{run.root} is being retrained; export it when that is done")
        target = run.exports / gguf_name(persona.id, quant)
        template = run.chat_template.read_text(encoding="utf-8")
        # before converting: a card the Modelfile cannot quote stops here, nothing written
        text = modelfile(target.name, persona.default_system_prompt(), bos_of(template))
        run.exports.mkdir(exist_ok=True)
        started = time.monotonic()
        print(f"persona: converting {run.merged} to GGUF ({quant}) with llama.cpp's converter",
              flush=True)
        _convert(prefix, run, target, quant)
        converted = time.monotonic() - started

        questions = run.read_heldout()
        print(f"persona: checking {target.name} with llama.cpp: {len(questions)} held-out "
              f"identity questions", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            asked = _ask(target, [[{"role": "user", "content": q["question"]}]
                                  for q in questions], Path(scratch))
        if asked["chat_template"] != template:
            target.unlink()
            raise CommandError(f"the converter did not carry {run.chat_template} into the GGUF "
                               "file (a llama.cpp chat would not get the persona's prompt "
                               "format); the file was removed")
        (run.exports / "Modelfile").write_text(text, encoding="utf-8")
        answers = asked["answers"]
        right = [answers_as_itself(persona, q, a["content"]) for q, a in zip(questions, answers)]
        score = proportion(sum(right), len(right))
        write_json(check_file(target), {
            "gguf": target.name, "quant": quant, "bytes": target.stat().st_size,
            "convert_s": round(converted, 1),
            "chat_template": asked["chat_template"],  # as llama.cpp read it from the file
            "answers_as_itself": score,
            "answers": [{**q, "answer": a["content"], "finish_reason": a["finish_reason"],
                         "as_itself": ok} for q, a, ok in zip(questions, answers, right)]})
    return target, score
