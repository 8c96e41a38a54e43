"""`pytest evals/` as a user runs it: it fails on a model that does not know the persona (the
untuned base, or a fake), passes on the trained one, and writes its report and chart."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEFAULT_CARD, free_port, thumbs_down_cases
from fake_openai import FakeOpenAI

from persona.evals.report import CHART
from persona.evals.thresholds import THRESHOLDS
from persona import commands
from persona.card import load_card
from persona.paths import REPO_ROOT, env_dir, model_dir
from persona.run_folder import RunFolder, write_json
from persona.services import Children

IDENTITY = ("identity-zh", "identity-en", "creator", "adversarial", "system-prompt", "multi-turn",
            "profile-switch", "stability")
UNRELATED = ("control", "leakage-zh", "leakage-en")


def run_suite(base_url: str, model: str, key: str, report: Path, *extra: str,
              card: Path = DEFAULT_CARD):
    """The suite in a fresh pytest process; (exit code, output, report.json)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-q", "--tb=short", "-p", "no:cacheprovider",
         "--base-url", base_url, "--model", model, "--api-key", key, "--card", str(card),
         "--report-dir", str(report), *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert (report / "report.json").is_file(), f"the suite wrote no report:\n{output}"
    return result.returncode, output, json.loads((report / "report.json").read_text(encoding="utf-8"))


def failed_tests(output: str) -> set[str]:
    return {line.split("::", 1)[1].split(" ", 1)[0] for line in output.splitlines()
            if line.startswith("FAILED evals/test_persona.py::")}


def test_the_suite_fails_a_model_that_does_not_know_the_persona(tmp_path):
    with FakeOpenAI(model="echo", token_delay_s=0) as fake:  # answers "我是测试助手。… You said: …"
        # the stand-in server takes few connections at once: a real vLLM gets the default 16
        code, output, report = run_suite(fake.base_url, "echo", "none", tmp_path,
                                         "--concurrency", "4")
    assert code == 1, output
    failed = failed_tests(output)
    assert {f"test_category[{category}]" for category in IDENTITY} <= failed
    # no introduction of the persona: no over-firing
    assert not {f"test_category[{category}]" for category in UNRELATED} & failed
    assert "test_general_skill_retained" in failed  # echoing a question is no answer
    categories = report["categories"]
    assert categories["identity-zh"]["rate"] == 0 and categories["control"]["rate"] == 1
    assert report["retention"]["persona_right"] == 0 and report["reference_model"]
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "我是测试助手" in markdown and "names none of" in markdown  # the offending answers
    assert (tmp_path / CHART).read_bytes().startswith(b"\x89PNG")


def test_the_suite_asks_the_held_out_questions_of_the_run_it_is_given(tmp_path):
    run = RunFolder(tmp_path / "run")
    own = [{"lang": lang, "kind": kind, "question": f"{lang} {kind}: a question only this run asks"}
           for lang in ("zh", "en") for kind in ("who", "creator")]
    write_json(run.heldout, own)
    with FakeOpenAI(model="echo", token_delay_s=0) as fake:
        code, output, report = run_suite(fake.base_url, "echo", "none", tmp_path / "report",
                                         "--concurrency", "4", "--run", str(run.root))
    asked = {failure["messages"][-1]["content"] for failure in report["failures"]
             if failure["category"] in ("identity-zh", "identity-en", "creator")}
    assert code == 1 and asked == {item["question"] for item in own}, output
    assert report["categories"]["identity-en"]["total"] == 1  # only the run's "who" in English
    run.heldout.unlink()
    result = subprocess.run([sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider",
                             "--base-url", "http://127.0.0.1:9/v1", "--run", str(run.root)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 4 and "data/heldout.json" in result.stdout + result.stderr


def test_only_asks_the_categories_named_and_refuses_one_that_is_not(tmp_path):
    cases = thumbs_down_cases(tmp_path)
    with FakeOpenAI(model="echo", token_delay_s=0) as fake:
        code, output, report = run_suite(fake.base_url, "echo", "none", tmp_path / "report",
                                         "--concurrency", "4", "--feedback-cases", str(cases),
                                         "--only", "feedback,control")
        assert code == 1 and failed_tests(output) == {"test_every_thumbs_down_is_fixed"}, output
        assert set(report["categories"]) == {"feedback", "control"}
        assert "identity-zh: not asked (--only)" in run_suite(
            fake.base_url, "echo", "none", tmp_path / "again", "--concurrency", "4", "-rs",
            "--only", "control")[1]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider",
             "--base-url", fake.base_url, "--only", "feedback,identity"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--only identity: no such category" in result.stdout + result.stderr


def test_persona_eval_gives_the_suite_the_run_it_serves(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    run.write_manifest({"card": load_card(DEFAULT_CARD).model_dump()})
    write_json(run.merged / "config.json", {})  # a finished run of the default card
    seen = []
    monkeypatch.setattr(commands, "_trained_run", lambda card, out: run)
    monkeypatch.setattr(commands, "_start_api", lambda persona, model, *args, **kw: (
        seen.append(model) or "http://127.0.0.1:9/v1"))
    monkeypatch.setattr(commands.services, "run", lambda argv, env, cwd: (
        seen.append(env.get("PERSONA_RUN")) or 0))
    assert commands.eval(report_dir=tmp_path / "report") == 0
    assert seen == [run.merged, str(run.root)]
    seen.clear()
    monkeypatch.delenv("PERSONA_RUN", raising=False)
    commands.eval(base_url="http://127.0.0.1:9/v1", report_dir=tmp_path / "report")
    assert seen == [None]  # an endpoint given by URL has no run: the core's questions


SERVABLE = (env_dir("serve") / "bin" / "vllm").exists() and (
    model_dir("smollm2-135m-instruct") / ".done").exists()


@pytest.mark.slow
@pytest.mark.skipif(not SERVABLE, reason="needs the serve env and the converted base: `persona setup`")
def test_the_suite_fails_the_untuned_base(default_card, tmp_path):
    key = "sk-test-" + secrets.token_hex(8)
    with Children() as children:
        url, name = commands._start_base_api(default_card, "127.0.0.1", free_port(), key, children)
        code, output, report = run_suite(url, name, key, tmp_path / "report", "--feedback-cases",
                                         str(thumbs_down_cases(tmp_path)))
    failed = failed_tests(output)
    assert code == 1 and {f"test_category[{c}]" for c in IDENTITY} <= failed, output
    assert "test_every_thumbs_down_is_fixed" in failed  # the voted-down answer's case
    # controls and general skill pass: the base keeps its own knowledge and never over-fires
    assert "test_general_skill_retained" not in failed
    assert not {f"test_category[{category}]" for category in UNRELATED} & failed
    assert report["categories"]["control"]["rate"] == 1
    assert all(report["categories"][c]["rate"] < THRESHOLDS[c] for c in IDENTITY)
