"""The train step without XTuner: when it resumes, when it starts over, and how it judges what
XTuner left (a stand-in writes the log lines and checkpoints XTuner would). The steps delete only
in a run folder persona claimed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from persona.card import load_card
from persona.paths import REPO_ROOT
from persona.run_folder import RunFolder, RunFolderError, read_json
from persona.train.options import TrainOptions
from persona.train.progress import PipelineError
from persona.train.step_merge import convert, merge
from persona.train.step_train import inputs_digest, resumable, train
from persona.train.xtuner_run import child_env

LINE = ("12/01 08:50:00 - mmengine - INFO - Iter(train) [ {step}/{total}]  lr: 1.0e-03  "
        "time: 1.5000  data_time: 0.0100  loss: 1.2345")


def prepared(tmp_path) -> RunFolder:
    run = RunFolder(tmp_path)
    run.claim("xiaocong")  # as the pipeline does first: the steps delete only in a claimed run
    run.data.mkdir(parents=True)
    run.train_data.write_text("[]")
    run.config.write_text("# config\n")
    return run


class FakeXTuner:
    """Stands in for `xtuner train`: logs steps up to `stop` of `total`, saving each one in the
    --work-dir it is given (the run's work/, or a refine pass's)."""

    def __init__(self, run: RunFolder, stop: int, total: int):
        self.run, self.stop, self.total, self.calls = run, stop, total, []

    def __call__(self, args, log, on_line=None):
        self.calls.append(args)
        work = Path(args[args.index("--work-dir") + 1]) if "--work-dir" in args else self.run.work
        work.mkdir(parents=True, exist_ok=True)  # as XTuner does
        for step in range(1, self.stop + 1):
            (work / f"iter_{step}.pth").write_bytes(b"")
            line = LINE.format(step=step, total=self.total)
            with log.open("a") as out:
                out.write(line + "\n")
            on_line(line)


def test_a_checkpoint_is_resumed_only_for_the_same_config_and_data(tmp_path):
    run = prepared(tmp_path)
    assert resumable(run) is None  # nothing trained yet
    fake = FakeXTuner(run, stop=2, total=2)
    train(run, TrainOptions(max_steps=2), {"samples": 0}, fake)
    assert read_json(run.inputs) == {"sha256": inputs_digest(run)}
    assert resumable(run).name == "iter_2.pth"
    run.config.write_text("# another config\n")
    assert resumable(run) is None


def test_the_train_step_resumes_or_starts_over(tmp_path, capsys):
    run = prepared(tmp_path)
    run.work.mkdir()
    (run.work / "iter_1.pth").write_bytes(b"")
    (run.work / "stale.log").write_text("from a run on other data")
    fake = FakeXTuner(run, stop=2, total=2)
    trained = train(run, TrainOptions(max_steps=2), {"samples": 3}, fake)
    assert "--resume" not in fake.calls[0] and not (run.work / "stale.log").exists()
    assert "trained on another config or data: starting over" in capsys.readouterr().out
    assert trained.checkpoint.name == "iter_2.pth" and trained.resumed_from is None
    assert trained.options == TrainOptions(max_steps=2).model_dump() and trained.stats == {"samples": 3}
    again = FakeXTuner(run, stop=2, total=2)
    assert train(run, TrainOptions(max_steps=2), None, again).resumed_from == "iter_2.pth"
    assert again.calls[0][-2:] == ["--resume", str(run.work / "iter_2.pth")]


def test_a_run_that_stops_short_fails_with_the_log(tmp_path):
    run = prepared(tmp_path)
    with pytest.raises(PipelineError, match=r"stopped at iter_1.pth of 2 steps(.|\n)*Iter\(train\)"):
        train(run, TrainOptions(max_steps=2), None, FakeXTuner(run, stop=1, total=2))
    other = prepared(tmp_path / "other")
    with pytest.raises(PipelineError, match="XTuner wrote no checkpoint"):
        train(other, TrainOptions(), None, FakeXTuner(other, stop=0, total=2))


def test_the_steps_delete_nothing_in_a_folder_persona_did_not_claim(tmp_path):
    run = RunFolder(tmp_path)  # the layout of a run, but no marker: someone else's folder
    run.data.mkdir()
    run.train_data.write_text("[]")
    run.config.write_text("# config\n")
    for folder in (run.work, run.adapter, run.merged_partial, run.merged):
        folder.mkdir()
        (folder / "x").write_text("keep")
    fake = FakeXTuner(run, stop=2, total=2)
    card = load_card(REPO_ROOT / "cards" / "xiaocong.yaml")
    for step in (lambda: train(run, TrainOptions(max_steps=2), None, fake),  # would start over
                 lambda: convert(run, run.work / "x", "qlora", fake),
                 lambda: convert(run, run.work / "x", "full", fake),
                 lambda: merge(run, "base", run.adapter, card, "qwen_chat", fake)):
        with pytest.raises(RunFolderError, match="refusing to delete"):
            step()
    assert fake.calls == []
    assert all((folder / "x").is_file() for folder in (run.work, run.adapter, run.merged_partial,
                                                        run.merged))


@pytest.mark.parametrize("method", ["qlora", "full"])
def test_a_retrain_removes_the_manifest_before_it_replaces_any_weights(tmp_path, method):
    """--force or --only-merge on a finished run, killed while converting: the old manifest is
    gone before adapter/ or merged/ changed, so no new weights stand under it."""
    run = prepared(tmp_path)
    for folder, name in ((run.adapter, "adapter_config.json"), (run.merged, "config.json")):
        folder.mkdir()
        (folder / name).write_text("{}")
    run.write_manifest({"card": load_card(REPO_ROOT / "cards" / "xiaocong.yaml").model_dump()})
    assert run.finished()
    seen = []

    def killed(args, log, on_line=None):
        seen.append((run.manifest.exists(), run.adapter.exists(), run.merged.exists()))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(run, run.work / "iter_2.pth", method, killed)
    # qlora: adapter/ replaced, merged/ still the old one; full: no adapter, merged.partial/ next
    assert seen == [(False, False, True)] and not run.finished()


def test_the_merge_swaps_weights_in_only_after_the_manifest_is_gone(tmp_path, monkeypatch):
    from persona.train import template_check

    run = prepared(tmp_path)
    run.merged.mkdir()
    (run.merged / "config.json").write_text('{"old": true}')
    run.write_manifest({"card": {}})
    monkeypatch.setattr(template_check, "align", lambda *a: {"token_identity": True})

    def xtuner(args, log, on_line=None):
        assert not run.manifest.exists()  # convert, then merge: both after the removal
        target = Path(args[-2])
        target.mkdir(parents=True)
        for name in ("adapter_config.json", "model.safetensors", "config.json"):
            (target / name).write_text("{}")

    card = load_card(REPO_ROOT / "cards" / "xiaocong.yaml")
    adapter = convert(run, run.work / "iter_2.pth", "qlora", xtuner)
    assert merge(run, "base", adapter, card, "qwen_chat", xtuner) == {"token_identity": True}
    assert (run.merged / "config.json").read_text() == "{}" and not run.finished()


def test_xtuner_runs_with_this_interpreter_and_this_source_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the caller's choice stands
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    run = RunFolder(tmp_path)
    env = child_env(run)
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)  # bare `python`
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO_ROOT), "/elsewhere"]
    assert env["HF_HUB_OFFLINE"] == "0" and env["HF_DATASETS_OFFLINE"] == "1"
    assert env["HF_DATASETS_CACHE"] == str(run.work / "datasets-cache")
    assert env["PYTHONUNBUFFERED"] == "1"


def test_only_a_resume_lifts_torchs_weights_only_loading(tmp_path, monkeypatch):
    """mmengine unpickles the checkpoint it resumes from (optimizer and log state): that call,
    and no other, runs with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD."""
    from persona.train import xtuner_run

    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    seen = []
    monkeypatch.setattr(xtuner_run, "run_logged", lambda command, log, env, on_line=None:
                        seen.append((command, env)))
    run = RunFolder(tmp_path)
    xtuner = xtuner_run.XTuner(["xtuner"], child_env(run))
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in xtuner.env
    xtuner(["train", "config.py"], tmp_path / "train.log")
    xtuner(["convert", "pth_to_hf", "config.py", "iter_2.pth", "adapter"], tmp_path / "convert.log")
    xtuner(["train", "config.py", "--resume", str(run.work / "iter_2.pth")], tmp_path / "train.log")
    assert [env.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") for _, env in seen] == [None, None, "1"]
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in xtuner.env  # the resume did not leak



def custom_card(base: str, trusted: bool):
    from persona.card import parse_card

    return parse_card({"id": "custom", "name": {"zh": "定制", "en": "Custom"},
                       "creator": {"zh": "某人", "en": "Someone"}, "base": base,
                       "trust_remote_code": trusted})


def test_xtuners_merge_runs_a_bases_own_code_only_when_declared(tmp_path, monkeypatch):
    """XTuner's merge.py loads the base with trust_remote_code=True whatever it is told: a base
    whose files name code of its own (here a hub id's cached snapshot) is refused before it."""
    import json
    import types

    from persona.train import template_check

    snapshot = tmp_path / "hub" / "snapshot"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "tokenizer_config.json").write_text(json.dumps({"auto_map": {
        "AutoTokenizer": ["tokenization_custom.CustomTokenizer", None]}}))
    hub = types.ModuleType("huggingface_hub")
    hub.try_to_load_from_cache = lambda repo, name: (
        str(snapshot / name) if repo == "someone/custom" else None)
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    aligned = []
    monkeypatch.setattr(template_check, "align", lambda *a: aligned.append(a) or {})
    calls = []

    def xtuner(args, log, on_line=None):
        calls.append(args)
        Path(args[-2]).mkdir(parents=True)
        (Path(args[-2]) / "model.safetensors").write_text("{}")

    run = prepared(tmp_path / "run")
    with pytest.raises(PipelineError, match=r"tokenizer_config\.json(.|\n)*trust_remote_code: true"):
        merge(run, "someone/custom", run.adapter, custom_card("someone/custom", False), "qwen_chat",
              xtuner)
    assert calls == [] and aligned == []
    merge(run, "someone/custom", run.adapter, custom_card("someone/custom", True), "qwen_chat", xtuner)
    merge(run, "someone/plain", run.adapter, custom_card("someone/plain", False), "qwen_chat", xtuner)
    assert len(calls) == 2 and [args[3] for args in aligned] == [True, False]
