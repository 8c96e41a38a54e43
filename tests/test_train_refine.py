"""`persona train --corrections F --refine`: a short pass that starts from a finished run's
adapter and trains the corrections among a rehearsal sample of the run's own data; its
config, its files in refine/, its refusals, and what the manifest and a later --only-merge make
of it. XTuner is stood in for here; tests/test_feedback_loop.py runs the real one."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import DEFAULT_CARD
from test_train_steps import FakeXTuner
from persona import commands, envs
from persona.card import load_card
from persona.errors import PersonaError
from persona.paths import REPO_ROOT
from persona.run_folder import (RunFolder, RunFolderError, read_json, refined_already, refusal,
                                samples_digest, write_json)
from persona.train import step_refine
from persona.train.options import TrainOptions
from persona.train.pipeline_args import parse_args
from persona.train.step_refine import CORRECTION_REPEATS, MIN_REHEARSAL, refine, refine_samples
from persona.train.step_train import earlier
from persona.train.xtuner_config import render_config

CARD = load_card(DEFAULT_CARD)
START_CHECK = REPO_ROOT / "tests" / "train_env" / "start_adapter_check.py"


def sample(question: str, answer: str = "an answer") -> dict:
    return {"conversation": [{"input": question, "output": answer}]}


CORRECTIONS = [sample("你平时喜欢听歌吗？", "很多人边听歌边放松。"), sample("How do I tie a tie?")]


def finished(tmp_path, adapter: bool = True, card=CARD) -> RunFolder:
    """A finished run's files, as far as --refine reads them."""
    run = RunFolder(tmp_path / "run")
    run.claim(card.id)
    write_json(run.train_data, [sample(f"own question {i}") for i in range(300)])
    write_json(run.heldout, [{"lang": lang, "kind": "who", "question": f"{lang} who?"}
                             for lang in ("zh", "en")])
    write_json(run.merged / "config.json", {})
    if adapter:
        write_json(run.adapter_config, {"r": 16})
    run.config.write_text("# the training's config\n")
    run.write_manifest({"card": card.model_dump(), "hyperparameters": TrainOptions().model_dump(),
                        "dataset": {"samples": 100, "replay_ratio": 0.15}})
    return run


def test_the_pass_is_the_corrections_among_a_sample_of_the_runs_own_data():
    own = [sample(f"own {i}") for i in range(300)]
    samples = refine_samples(CORRECTIONS, own, seed=42)
    assert len(samples) == len(CORRECTIONS) * CORRECTION_REPEATS + MIN_REHEARSAL
    for correction in CORRECTIONS:
        assert samples.count(correction) == CORRECTION_REPEATS
    rehearsed = [item for item in samples if item not in CORRECTIONS]
    assert all(item in own for item in rehearsed) and len({id(i) for i in rehearsed}) == MIN_REHEARSAL
    assert refine_samples(CORRECTIONS, own, seed=42) == samples  # the run's seed decides
    assert refine_samples(CORRECTIONS, own, seed=7) != samples
    few = refine_samples(CORRECTIONS, own[:10], seed=42)  # a small run: all of it
    assert len(few) == len(CORRECTIONS) * CORRECTION_REPEATS + 10


def test_the_pass_trains_from_the_adapter_in_its_own_folder_and_records_itself(tmp_path):
    run = finished(tmp_path)
    run.refine_work.mkdir(parents=True)
    (run.refine_work / "iter_9.pth").write_bytes(b"")  # an earlier pass: replaced
    fake = FakeXTuner(run, stop=3, total=3)
    trained = refine(run, CARD, "/models/base", CORRECTIONS, fake)
    assert fake.calls == [["train", str(run.refine_config), "--work-dir", str(run.refine_work)]]
    assert trained.checkpoint == run.refine_work / "iter_3.pth"
    config = run.refine_config.read_text(encoding="utf-8")
    assert f'start_adapter="{run.adapter}"' in config
    assert f'data_path = "{run.refine_data}"' in config
    assert f"lr = {TrainOptions().lr * step_refine.LR_FACTOR}" in config
    assert "max_iters = None" in config and "max_epochs = 1" in config
    assert len(read_json(run.refine_data)) == len(CORRECTIONS) * CORRECTION_REPEATS + MIN_REHEARSAL
    assert run.config.read_text() == "# the training's config\n"  # convert builds from it
    # the run's options stay those of its training; the stats add the corrections and the pass
    assert trained.options == TrainOptions().model_dump()
    fixes = trained.stats["corrections"]
    assert fixes["digest"] == samples_digest(CORRECTIONS) and fixes["samples"] == 2
    assert fixes["refined"]["steps"] == 3 and fixes["refined"]["final_loss"] == 1.2345
    assert trained.stats["replay_ratio"] == 0.15


def test_only_merge_takes_the_checkpoint_the_manifest_describes(tmp_path):
    run = finished(tmp_path)
    run.work.mkdir()
    (run.work / "iter_520.pth").write_bytes(b"")
    run.write_options(TrainOptions().model_dump())
    assert earlier(run).checkpoint.name == "iter_520.pth"
    refine(run, CARD, "/models/base", CORRECTIONS, FakeXTuner(run, stop=2, total=2))
    manifest = run.read_manifest()
    manifest["dataset"]["corrections"] = {"digest": "x", "refined": {"steps": 2}}
    run.write_manifest(manifest)
    assert earlier(run).checkpoint == run.refine_work / "iter_2.pth"


def test_refine_needs_a_finished_lora_run_of_the_same_card_and_options(tmp_path):
    with pytest.raises(RunFolderError, match="starts from a finished run"):
        refined_already(RunFolder(tmp_path / "empty"), CARD, {}, CORRECTIONS)
    run = finished(tmp_path)
    assert refined_already(run, CARD, {}, CORRECTIONS) is False
    with pytest.raises(RunFolderError, match="lr: 0.002 in the run, 0.001 requested"):
        refined_already(run, CARD, {"lr": 0.001}, CORRECTIONS)
    lingxi = load_card(DEFAULT_CARD.parent / "lingxi.yaml")
    with pytest.raises(RunFolderError, match="card name"):
        refined_already(run, lingxi, {}, CORRECTIONS)
    manifest = run.read_manifest()
    manifest["dataset"]["corrections"] = {"digest": samples_digest(CORRECTIONS)}
    run.write_manifest(manifest)
    assert refined_already(run, CARD, {}, CORRECTIONS) is True
    assert refined_already(run, CARD, {}, CORRECTIONS[:1]) is False
    full = finished(tmp_path / "full", adapter=False)
    with pytest.raises(RunFolderError, match="has none \\(a full fine-tune\\)"):
        refined_already(full, CARD, {}, CORRECTIONS)


def test_a_refused_run_points_to_refine_only_when_the_corrections_alone_differ(tmp_path):
    run = RunFolder(tmp_path)
    alone = refusal(run, ["corrections: the run trained without corrections"])
    assert "add --refine" in alone and "--force" in alone
    both = refusal(run, ["lr: 0.002 in the run, 0.001 requested",
                         "corrections: the run trained without corrections"])
    assert "--refine" not in both and "--force" in both


@pytest.mark.parametrize("extra, why", [
    ([], "give --corrections FILE"),
    (["--corrections", "c.json", "--force"], "drop --force"),
    (["--corrections", "c.json", "--dataset", "d.json"], "drop --dataset"),
    (["--corrections", "c.json", "--only-merge"], "drop --only-merge"),
])
def test_the_pipeline_takes_refine_with_corrections_alone(extra, why, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--card", "c.yaml", "--base-model", "b", "--out", "r", "--refine", *extra])
    assert stopped.value.code == 2 and why in capsys.readouterr().err
    assert parse_args(["--card", "c.yaml", "--base-model", "b", "--out", "r", "--refine",
                       "--corrections", "c.json"]).refine


def test_persona_train_refine_checks_everything_before_the_training_env_starts(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(commands, "_run_pipeline", lambda *a: pytest.fail("the env started"))
    fixes = tmp_path / "corrections.json"
    write_json(fixes, CORRECTIONS)
    with pytest.raises(PersonaError, match="--refine trains a finished run on --corrections alone"):
        commands.train(card=DEFAULT_CARD, out=tmp_path / "run", refine=True)
    with pytest.raises(PersonaError, match="starts from a finished run"):
        commands.train(card=DEFAULT_CARD, out=tmp_path / "none", corrections=fixes, refine=True)
    run = finished(tmp_path)
    manifest = run.read_manifest()
    manifest["dataset"]["corrections"] = {"digest": samples_digest(CORRECTIONS)}
    run.write_manifest(manifest)
    assert commands.train(card=DEFAULT_CARD, out=run.root, corrections=fixes, refine=True) == run.root
    assert "already refined with these corrections" in capsys.readouterr().out
    started = []
    monkeypatch.setattr(commands, "_run_pipeline", lambda card, persona, run, flags: (
        started.append(flags) or 1))
    write_json(fixes, CORRECTIONS[:1])
    with pytest.raises(PersonaError, match="training xiaocong failed"):
        commands.train(card=DEFAULT_CARD, out=run.root, corrections=fixes, refine=True)
    assert started == [["--corrections", str(fixes.resolve()), "--refine"]]


def test_the_config_names_the_adapter_it_starts_from_and_full_has_none():
    plain = render_config("xiaocong", "/models/base", "/run/data/train.json", TrainOptions())
    assert "start_adapter" not in plain
    started = render_config("xiaocong", "/models/base", "/run/refine/data.json", TrainOptions(),
                            start_adapter="/run/adapter")
    assert 'start_adapter="/run/adapter",' in started
    compile(started, "xtuner_config.py", "exec")  # still Python
    with pytest.raises(ValueError, match="no LoRA adapter to start from"):
        render_config("xiaocong", "/models/base", "/d.json", TrainOptions(method="full"),
                      start_adapter="/run/adapter")


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_the_builder_starts_from_every_weight_of_the_adapter_or_refuses_it(tmp_path):
    result = subprocess.run([str(envs.python("train")), str(START_CHECK), str(tmp_path)],
                            capture_output=True, text=True, env=envs.command_env("train"),
                            cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["weights"] == 2 * 7 * 2 and report["same_keys"], report  # A and B, 7 layers, 2 blocks
    assert report["max_difference"] == 0.0 < report["fresh_difference"], report
    assert "does not fit" in report["other_rank"] and "size mismatch" in report["other_rank"]
    assert "does not fit" in report["other_layers"] and "LoRA weights missing" in report["other_layers"]
