"""`pytest evals/` against any OpenAI-compatible endpoint serving a persona.

Endpoint, model and key come from --base-url/--model/--api-key or PERSONA_BASE_URL,
PERSONA_MODEL, PERSONA_API_KEY; the card from --card or PERSONA_CARD; the run folder whose
held-out questions are asked from --run or PERSONA_RUN (without one, the identity core's
held-out split, which is what every run's dataset writes); the base run to compare
general skills with from --reference-report or PERSONA_REFERENCE_REPORT (default: the stored run
of the card's base in evals/baselines/). All requests are sent concurrently once per session;
each test then judges its own answers.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from persona.evals import baseline
from persona.evals.cases import Case, build_cases, feedback_cases, heldout_questions
from persona.evals.report import write_report
from persona.evals.thresholds import THRESHOLDS
from persona.card import load_card
from persona.feedback import feedback_dir, load_cases
from persona.run_folder import RunFolderError
from persona.identity.judges import problems

DEFAULT_CARD = Path(__file__).resolve().parent.parent / "cards" / "xiaocong.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("persona evals")
    group.addoption("--base-url", default=os.environ.get("PERSONA_BASE_URL"),
                    help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    group.addoption("--model", default=os.environ.get("PERSONA_MODEL"), help="served model name")
    group.addoption("--api-key", default=os.environ.get("PERSONA_API_KEY", "none"))
    group.addoption("--card", default=os.environ.get("PERSONA_CARD", str(DEFAULT_CARD)))
    group.addoption("--run", default=os.environ.get("PERSONA_RUN") or None,
                    help="the served persona's run folder: its data/heldout.json is asked")
    group.addoption("--report-dir", default=os.environ.get("PERSONA_EVAL_REPORT", "eval-report"))
    group.addoption("--reference-report", default=os.environ.get("PERSONA_REFERENCE_REPORT"),
                    help="report.json of the suite run against the untuned base")
    group.addoption("--concurrency", type=int, default=16)
    group.addoption("--feedback-cases", default=os.environ.get("PERSONA_FEEDBACK_CASES"),
                    help="cases.json of `persona feedback export` (default: the card's, when "
                         "one was exported)")
    group.addoption("--only", default=None,
                    help="ask only these categories, comma-separated (e.g. feedback after a "
                         "correction, or identity-zh,identity-en); the others are skipped")


def _card(config: pytest.Config):
    return load_card(config.getoption("--card"))


@pytest.fixture(scope="session")
def cases(request: pytest.FixtureRequest) -> list[Case]:
    run = request.config.getoption("--run")
    try:
        heldout = heldout_questions(Path(run) if run else None)
    except RunFolderError as error:
        pytest.exit(str(error), returncode=4)
    card = _card(request.config)
    chosen = request.config.getoption("--feedback-cases")
    exported = Path(chosen) if chosen else feedback_dir(card.id) / "cases.json"
    try:
        feedback = load_cases(exported) if chosen or exported.is_file() else []
    except (OSError, ValueError) as error:
        pytest.exit(f"{exported}: not a feedback case file ({error})", returncode=4)
    everything = build_cases(card, heldout) + feedback_cases(feedback)
    chosen = only(request.config)
    unknown = chosen - {case.category for case in everything} - set(THRESHOLDS) - {"feedback"}
    if unknown:
        pytest.exit(f"--only {', '.join(sorted(unknown))}: no such category; the categories are "
                    f"{', '.join(sorted(set(THRESHOLDS) | {'general-skill', 'feedback'}))}",
                    returncode=4)
    return [case for case in everything if not chosen or case.category in chosen]


def only(config: pytest.Config) -> set[str]:
    """The categories --only asks (empty: all of them)."""
    return {name.strip() for name in (config.getoption("--only") or "").split(",") if name.strip()}


@pytest.fixture(scope="session")
def asked(request: pytest.FixtureRequest):
    """asked(category): whether this session asks that category's cases."""
    chosen = only(request.config)
    return lambda category: not chosen or category in chosen


@pytest.fixture(scope="session")
def reference(request: pytest.FixtureRequest) -> dict | None:
    """The base's run to compare with, or None when there is none for this card's base."""
    try:
        return baseline.find(request.config.getoption("--reference-report"),
                             _card(request.config).base)
    except baseline.BaselineError as error:
        pytest.exit(str(error), returncode=4)


@pytest.fixture(scope="session")
def client(request: pytest.FixtureRequest):
    from openai import OpenAI

    base_url = request.config.getoption("--base-url")
    if not base_url:
        pytest.exit("evals need an endpoint: pass --base-url (or PERSONA_BASE_URL), "
                    "or run `persona eval`, which starts the default persona's server", returncode=4)
    return OpenAI(base_url=base_url, api_key=request.config.getoption("--api-key"),
                  timeout=300, max_retries=2)  # a dropped connection is no verdict


@pytest.fixture(scope="session")
def model(request: pytest.FixtureRequest, client) -> str:
    chosen = request.config.getoption("--model")
    served = [item.id for item in client.models.list()]
    if chosen is None:
        return served[0]
    assert chosen in served, f"model {chosen!r} is not served here; the server lists {served}"
    return chosen


def _ask(client, model: str, case: Case) -> list[dict[str, str | None]]:
    answers = []
    for _ in range(case.samples):
        seeded = {} if case.seed is None else {"seed": case.seed}
        response = client.chat.completions.create(model=model, messages=case.messages,
                                                  temperature=case.temperature,
                                                  max_tokens=case.max_tokens, **seeded)
        choice = response.choices[0]
        answers.append({"text": choice.message.content or "", "finish_reason": choice.finish_reason})
    return answers


@pytest.fixture(scope="session")
def verdicts(request: pytest.FixtureRequest, cases, client, model, reference) -> dict[str, dict]:
    """Every case's answers, fetched concurrently once, each judged by the identity core's judges.
    The cases come first: a run without its held-out file stops the suite before any request."""
    with ThreadPoolExecutor(request.config.getoption("--concurrency")) as pool:
        fetched = list(pool.map(lambda case: _ask(client, model, case), cases))
    judged = {}
    for case, answers in zip(cases, fetched):
        for answer in answers:
            answer["problems"] = problems(answer["text"], answer["finish_reason"],
                                          case.expect_any, case.forbid, case.accept, case.strict,
                                          case.answer_lang)
        passing = sum(not answer["problems"] for answer in answers)
        judged[case.id] = {"passed": passing >= case.min_passing, "answers": answers}
    write_report(Path(request.config.getoption("--report-dir")), model, cases, judged, reference)
    return judged
