"""The run folder: one layout, JSON written whole or not at all, the one finished check, runs
trained before options.json existed still read (their options come from the manifest).

And the pipeline writes and deletes only in a run folder persona made, one job at a time: a
foreign --out folder is refused before anything in it is touched, a run from before the marker
is adopted, deletion stays inside the run, and a second job on a run in use fails at once with
the first one's pid (the lock goes with its process: one left by a killed job blocks nothing).
Training itself is stood in for: these paths need no torch and no XTuner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persona.card import parse_card
from persona.paths import REPO_ROOT
from persona.run_folder import RunFolder, RunFolderError, write_json
from persona.train import pipeline

CARD = {"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
        "creator": {"zh": "不要葱姜蒜大佬", "en": "Master No-Scallion"}}


def test_the_layout_is_named_once(tmp_path):
    run = RunFolder.at(tmp_path / "run")
    layout = {name: run.relative(getattr(run, name)) for name in (
        "data", "train_data", "heldout", "stats", "config", "options", "work", "inputs",
        "train_log", "convert_log", "merge_log", "adapter", "merged", "merged_partial",
        "loss_curve", "probe", "manifest", "marker", "lock_file")}
    assert layout == {
        "data": "data", "train_data": "data/train.json", "heldout": "data/heldout.json",
        "stats": "data/stats.json", "config": "xtuner_config.py", "options": "options.json",
        "work": "work", "inputs": "work/inputs.json", "train_log": "work/train.log",
        "convert_log": "work/convert.log", "merge_log": "work/merge.log", "adapter": "adapter",
        "merged": "merged", "merged_partial": "merged.partial", "loss_curve": "loss_curve.png",
        "probe": "probe.json", "manifest": "manifest.json", "marker": ".persona-run",
        "lock_file": ".lock"}
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


@pytest.mark.parametrize("file, content, why", [
    ("manifest.json", '{"card": {"id": "xiao', "not valid JSON"),
    ("manifest.json", b"\xff\xfe", "not valid JSON"),
    ("manifest.json", '"a string"', "a JSON str, not an object"),
    ("options.json", "[1, 2]", "a JSON list, not an object"),
])
def test_an_unreadable_run_file_is_an_error_that_says_how_to_recover(tmp_path, file, content,
                                                                      why):
    run = RunFolder(tmp_path)
    path = tmp_path / file
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    readers = [run.read_options] + ([run.read_manifest, run.card] if file == "manifest.json" else [])
    for read in readers:
        with pytest.raises(RunFolderError) as error:
            read()
        message = str(error.value)
        assert message.startswith(f"{path} cannot be read ({why}")
        assert "`persona train --force`" in message and "--out DIR" in message


@pytest.mark.parametrize("manifest, why", [
    ({"hyperparameters": {}}, "it records no card"),
    ({"card": {"id": "Bad Id"}}, "its card is invalid"),
])
def test_a_manifest_without_a_usable_card_is_unreadable(tmp_path, manifest, why):
    run = RunFolder(tmp_path)
    run.write_manifest(manifest)
    with pytest.raises(RunFolderError, match=f"manifest.json cannot be read \\({why}"):
        run.card()


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


def test_a_checkpoint_outside_the_run_is_never_the_runs(tmp_path):
    """Resuming unpickles the checkpoint: only a file inside work/ is ever handed to XTuner."""
    run = RunFolder(tmp_path / "run")
    run.work.mkdir(parents=True)
    (run.work / "iter_4.pth").write_bytes(b"")
    elsewhere = tmp_path / "elsewhere" / "iter_80.pth"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"someone else's pickle")
    (run.work / "last_checkpoint").write_text(str(elsewhere))
    assert run.last_checkpoint() == run.work / "iter_4.pth"
    (run.work / "last_checkpoint").write_text(str(run.work / ".." / ".." / "elsewhere" / "iter_80.pth"))
    assert run.last_checkpoint() == run.work / "iter_4.pth"
    (run.work / "iter_90.pth").symlink_to(elsewhere)  # a link out of the run, by name the newest
    (run.work / "last_checkpoint").write_text(str(run.work / "iter_90.pth"))
    assert run.last_checkpoint() == run.work / "iter_4.pth"


# -- the marker and deletion

def snapshot(folder: Path) -> dict:
    """Every file's bytes and every folder (None) under `folder`."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("existing", [False, True])
def test_a_new_or_empty_folder_is_claimed_with_a_marker(tmp_path, existing):
    if existing:
        (tmp_path / "run").mkdir()
    run = RunFolder(tmp_path / "run")
    run.claim("xiaocong")
    marker = json.loads(run.marker.read_text())
    assert marker["created_by"] == "persona" and marker["card"] == "xiaocong"
    assert marker["adopted"] is False and marker["created_at"]
    run.work.mkdir()
    run.claim("another")  # its own folder, no longer empty: still fine, the marker kept
    assert json.loads(run.marker.read_text()) == marker


def test_a_run_from_before_the_marker_is_adopted(tmp_path):
    run = RunFolder(tmp_path)
    run.write_manifest({"card": CARD, "hyperparameters": {"method": "qlora"}})
    (run.work / "iter_3.pth").parent.mkdir()
    (run.work / "iter_3.pth").write_bytes(b"weights")
    before = snapshot(tmp_path)
    run.claim("xiaocong")
    assert json.loads(run.marker.read_text())["adopted"] is True
    after = snapshot(tmp_path)
    assert after.pop(".persona-run") and after == before  # the marker, and nothing else changed


def test_an_interrupted_run_from_before_the_marker_is_adopted(tmp_path):
    """Stopped before its manifest: persona's XTuner config and the record of its checkpoints."""
    run = RunFolder(tmp_path)
    run.config.write_text('# XTuner config for persona "xiaocong", written by ...\n')
    run.work.mkdir()
    run.inputs.write_text('{"sha256": "0"}\n')
    run.claim("xiaocong")
    assert json.loads(run.marker.read_text())["adopted"] is True


@pytest.mark.parametrize("content", [
    {"work/x": "someone's file"},
    {"xtuner_config.py": "# XTuner config for persona", "notes.txt": "no inputs.json"},
    {"xtuner_config.py": "# someone else's config", "work/inputs.json": "{}"},
    {"notes.txt": "hello"},
    {"manifest.json": '{"name": "not a persona run"}'},  # a manifest, but not ours
    {"manifest.json": "not json"},
])
def test_a_foreign_folder_is_refused_untouched(tmp_path, content):
    for name, text in content.items():
        (tmp_path / "p" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "p" / name).write_text(text)
    before = snapshot(tmp_path)
    run = RunFolder(tmp_path / "p")
    with pytest.raises(RunFolderError, match="choose an empty or new --out folder") as refused:
        run.claim("xiaocong")
    assert str(run.root) in str(refused.value)
    with pytest.raises(RunFolderError, match="refusing to delete"):
        run.remove(run.work)
    with pytest.raises(RunFolderError, match="claim it before locking it"):
        with run.lock("train"):
            pass
    assert snapshot(tmp_path) == before and not run.marker.exists()


def test_a_file_is_no_run_folder(tmp_path):
    (tmp_path / "p").write_text("a file")
    with pytest.raises(RunFolderError, match="choose an empty or new --out folder"):
        RunFolder(tmp_path / "p").claim("xiaocong")
    assert (tmp_path / "p").read_text() == "a file"


def test_deletion_stays_inside_the_run(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.claim("xiaocong")
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    for path in (outside, run.root, run.root / ".." / "outside", run.work / ".." / ".."):
        with pytest.raises(RunFolderError, match="not inside the run folder"):
            run.remove(path)
    (run.adapter).symlink_to(outside)  # a link in the run: the link goes, never what it points to
    run.remove(run.adapter)
    assert not run.adapter.is_symlink() and (outside / "keep").is_dir()
    (run.work / "sub").mkdir(parents=True)
    run.stats.parent.mkdir()
    run.stats.write_text("{}")
    run.remove(run.work)
    run.remove(run.stats)
    run.remove(run.merged)  # not there: nothing to do
    assert not run.work.exists() and not run.stats.exists() and run.data.is_dir()
    assert run.root.is_dir() and run.claimed()


# -- the pipeline: claim, lock, refuse

CARD_FILE = REPO_ROOT / "cards" / "xiaocong.yaml"
NO_REPLAY = ["--replay-ratio", "0"]  # the dataset without asking the base model (no torch)

class Trained(Exception):
    """Raised where training would start: the run got that far."""


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    """A base model folder for the pipeline, whose training is stood in for."""
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # no second of CPU-load sensing

    def trained_now(*args, **kwargs):
        raise Trained()

    monkeypatch.setattr(pipeline, "trained_now", trained_now)
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def args(base: Path, out: Path, *extra: str) -> list[str]:
    return ["--card", str(CARD_FILE), "--base-model", str(base), "--out", str(out),
            "--device", "cpu", *extra]


JOBS = {"train": ["--force"], "merge": ["--only-merge"], "data": ["--only-data", *NO_REPLAY]}


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # this source tree's persona


@pytest.fixture
def holder(tmp_path, hold_run):
    """A process holding the run at tmp_path/'run': as a training by default, or shared."""
    return lambda job="train", shared=False: hold_run(tmp_path / "run", job, shared)


@pytest.mark.parametrize("job", JOBS)
def test_a_foreign_folder_is_refused_before_anything_is_touched(base, tmp_path, job):
    foreign = tmp_path / "p"
    (foreign / "work").mkdir(parents=True)
    (foreign / "work" / "x").write_text("not persona's")
    before = snapshot(foreign)
    with pytest.raises(RunFolderError, match="choose an empty or new --out folder") as refused:
        pipeline.main(args(base, foreign, *JOBS[job]))
    assert str(foreign) in str(refused.value)
    assert snapshot(foreign) == before


def test_a_new_folder_gets_the_marker(base, tmp_path):
    run = RunFolder(tmp_path / "run")
    with pytest.raises(Trained):
        pipeline.main(args(base, run.root, "--force"))
    assert json.loads(run.marker.read_text())["card"] == "xiaocong"
    empty = RunFolder(tmp_path / "empty")
    empty.root.mkdir()
    assert pipeline.main(args(base, empty.root, "--only-data", *NO_REPLAY)) == 0
    assert empty.claimed() and empty.train_data.is_file()


def test_a_run_from_before_the_marker_is_adopted_and_retrained(base, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.write_manifest({"card": {"id": "xiaocong"}, "hyperparameters": {"method": "qlora"}})
    (run.work / "iter_3.pth").parent.mkdir()
    (run.work / "iter_3.pth").write_bytes(b"")
    with pytest.raises(Trained):
        pipeline.main(args(base, run.root, "--force"))
    assert json.loads(run.marker.read_text())["adopted"] is True
    assert not run.work.exists()  # --force never resumes: its own run, so work/ may go


@pytest.mark.parametrize("job", JOBS)
def test_a_second_job_fails_at_once_naming_the_first(base, tmp_path, holder, job):
    first = holder()
    run = RunFolder(tmp_path / "run")
    run.work.mkdir()
    (run.work / "iter_3.pth").write_bytes(b"")
    before = snapshot(run.root)
    started = time.monotonic()
    in_use = fr"in use by pid {first.pid} \(train since "
    with pytest.raises(RunFolderError, match=in_use) as refused:
        pipeline.main(args(base, run.root, *JOBS[job]))
    assert time.monotonic() - started < 5  # at once, not after waiting for the lock
    assert "python -c " in str(refused.value)  # the holder's command
    assert str(refused.value).endswith("wait for it to finish, or stop it")
    assert snapshot(run.root) == before


def test_the_pipeline_command_reports_the_holder(base, tmp_path, holder):
    first = holder()
    result = subprocess.run([sys.executable, "-m", "persona.train.pipeline",
                             *args(base, tmp_path / "run", *JOBS["data"])],
                            cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"train: FAILED: {tmp_path / 'run'} is in use by pid {first.pid}" in result.stdout


def test_a_lock_left_by_a_killed_job_blocks_nothing(base, tmp_path, holder):
    first = holder()
    first.send_signal(signal.SIGKILL)
    first.wait()
    run = RunFolder(tmp_path / "run")
    assert json.loads(run.lock_file.read_text())["pid"] == first.pid  # the file is still there
    assert pipeline.main(args(base, run.root, *JOBS["data"])) == 0
    assert run.train_data.is_file()
    with run.lock("train"):
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()
    with run.lock("merge"):  # released when the job ended
        pass


# -- servers and evals share a run; nothing writes in it meanwhile

@pytest.mark.parametrize("job", JOBS)
def test_a_served_run_is_not_retrained_and_the_servers_are_named(base, tmp_path, holder, job):
    servers = [holder("serve", shared=True), holder("eval", shared=True)]  # they run together
    run = RunFolder(tmp_path / "run")
    before = snapshot(run.root)
    with pytest.raises(RunFolderError) as refused:
        pipeline.main(args(base, run.root, *JOBS[job]))
    message = str(refused.value)
    assert f"in use by pid {servers[0].pid} (serve since " in message
    assert f" and pid {servers[1].pid} (eval since " in message
    assert message.endswith("wait for it to finish, or stop it")
    assert snapshot(run.root) == before


def test_a_run_in_training_is_not_served(tmp_path, holder):
    first = holder()
    run = RunFolder(tmp_path / "run")
    for job in ("serve", "eval"):
        with pytest.raises(RunFolderError, match=fr"in use by pid {first.pid} \(train since .*python -c "):
            with run.lock(job, shared=True):
                pass


def test_only_the_holders_still_running_are_named(tmp_path, holder):
    gone, kept = holder("serve", shared=True), holder("serve", shared=True)
    gone.kill()
    gone.wait()
    run = RunFolder(tmp_path / "run")
    with pytest.raises(RunFolderError) as refused:
        with run.lock("train"):
            pass
    assert f"pid {kept.pid} (serve" in str(refused.value)
    assert f"pid {gone.pid} (" not in str(refused.value)
    kept.kill()
    kept.wait()
    with run.lock("train"):  # the lines of earlier holders go with the next one alone
        assert [json.loads(line)["job"] for line in run.lock_file.read_text().splitlines()] == ["train"]
