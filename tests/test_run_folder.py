"""The run folder: one layout, JSON written whole or not at all, the one finished check, and runs
trained before options.json existed still read (their options come from the manifest)."""

from __future__ import annotations

import json
import os

import pytest

from persona.card import parse_card
from persona.run_folder import RunFolder, RunFolderError, write_json

CARD = {"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
        "creator": {"zh": "不要葱姜蒜大佬", "en": "Master No-Scallion"}}


def test_the_layout_is_named_once(tmp_path):
    run = RunFolder.at(tmp_path / "run")
    layout = {name: run.relative(getattr(run, name)) for name in (
        "data", "train_data", "heldout", "stats", "config", "options", "work", "inputs",
        "train_log", "convert_log", "merge_log", "adapter", "merged", "merged_partial",
        "loss_curve", "probe", "manifest")}
    assert layout == {
        "data": "data", "train_data": "data/train.json", "heldout": "data/heldout.json",
        "stats": "data/stats.json", "config": "xtuner_config.py", "options": "options.json",
        "work": "work", "inputs": "work/inputs.json", "train_log": "work/train.log",
        "convert_log": "work/convert.log", "merge_log": "work/merge.log", "adapter": "adapter",
        "merged": "merged", "merged_partial": "merged.partial", "loss_curve": "loss_curve.png",
        "probe": "probe.json", "manifest": "manifest.json"}
    assert RunFolder.at("~/x").root.is_absolute()


def test_finished_needs_the_manifest_and_the_merged_model(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.finished()
    run.write_manifest({"card": CARD})
    assert not run.finished()  # a manifest without a merged model: not servable
    run.merged.mkdir()
    (run.merged / "config.json").write_text("{}")
    assert run.finished()
    run.manifest.unlink()
    assert not run.finished()  # a merge that never got its manifest


def test_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    run = RunFolder(tmp_path)
    run.write_manifest({"final_loss": 0.5, "card": CARD})
    before = run.manifest.read_bytes()
    with pytest.raises(TypeError):
        run.write_manifest({"final_loss": object()})  # cannot be serialised
    assert run.manifest.read_bytes() == before

    def crash(*args):  # the process dies between writing the new file and renaming it
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        run.write_manifest({"final_loss": 0.1, "card": CARD})
    assert run.manifest.read_bytes() == before  # readers still see the old manifest whole
    assert sorted(os.listdir(tmp_path)) == ["manifest.json"]  # no temporary file left behind
    monkeypatch.undo()
    write_json(run.stats, {"zh": "小葱"})
    assert run.stats.read_text(encoding="utf-8") == '{\n "zh": "小葱"\n}\n'  # readable, as before


def test_json_files_get_the_permissions_of_any_new_file(tmp_path):
    """Not a temporary file's owner-only mode: other users (a container) read runs too."""
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    run = RunFolder(tmp_path / "run")
    run.write_options({"lora_r": 16})
    assert run.options.stat().st_mode == plain.stat().st_mode


def test_a_run_from_before_options_json_reads_its_manifest(tmp_path):
    run = RunFolder(tmp_path)
    assert run.read_options() == {}
    run.write_manifest({"hyperparameters": {"method": "full", "lora_r": 8}})
    assert run.read_options() == {"method": "full", "lora_r": 8}
    run.write_options({"method": "lora", "lora_r": 32})
    assert run.read_options() == {"method": "lora", "lora_r": 32}
    assert json.loads(run.options.read_text()) == {"method": "lora", "lora_r": 32}


def test_card_and_heldout_questions(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(RunFolderError, match="not a finished run"):
        run.card()
    with pytest.raises(RunFolderError, match="data/heldout.json"):
        run.read_heldout()
    run.write_manifest({"card": parse_card(CARD).model_dump()})
    assert run.card() == parse_card(CARD)
    write_json(run.heldout, [{"lang": "en", "kind": "who", "question": "Who?"}])
    assert run.read_heldout() == [{"lang": "en", "kind": "who", "question": "Who?"}]


def test_last_checkpoint_follows_the_pointer_else_the_highest_step(tmp_path):
    run = RunFolder(tmp_path)
    assert run.last_checkpoint() is None  # no work/ at all
    run.work.mkdir()
    for step in (9, 10, 2):
        (run.work / f"iter_{step}.pth").write_bytes(b"")
    assert run.last_checkpoint().name == "iter_10.pth"  # by number, not by name
    (run.work / "last_checkpoint").write_text(str(run.work / "iter_9.pth"))
    assert run.last_checkpoint().name == "iter_9.pth"
    (run.work / "last_checkpoint").write_text(str(run.work / "iter_99.pth"))  # a stale pointer
    assert run.last_checkpoint().name == "iter_10.pth"
