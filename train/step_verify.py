"""The verify step: a few greedy answers of the merged model through its own chat template,
printed and kept in probe.json (a quick look; the evals are the measure)."""

from __future__ import annotations

from persona.run_folder import RunFolder, write_json
from persona.train.progress import say


def verify(run: RunFolder, trust_remote_code: bool = False) -> list[dict]:
    from persona.train.probe import DEFAULT_QUESTIONS, ask

    say("greedy answers of the merged model (its own chat template):")
    answers = ask(run.merged, DEFAULT_QUESTIONS, trust_remote_code=trust_remote_code)
    for item in answers:
        print(f"       Q: {item['question']}\n       A: {item['answer']}", flush=True)
    write_json(run.probe, answers)
    return answers
