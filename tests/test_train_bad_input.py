"""Bad input to `persona train` gets a message the user can act on, before anything heavy runs,
and a finished run already in the folder is left exactly as it was (same files, bytes and mtimes).
Also: a finished run is reused for the same request and refused, naming the difference, for
another one; every command that serves a run (serve, up, eval, serve --adapters) refuses a run
of another card with train's message, and an unreadable manifest with one that says what to do;
and each of them holds the run while it serves it: refused, naming the holder, while a training
holds it, beside another server of it allowed."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from persona.card import load_card, parse_card
from persona.cli import main
from persona.paths import run_dir
from persona.run_folder import RunFolder, RunFolderError, differences, refusal
from persona.train import pipeline, xtuner_log

CARD = {"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
        "creator": {"zh": "不要葱姜蒜大佬", "en": "Master No-Scallion"},
        "base": "smollm2-135m-instruct"}
USED = {"method": "qlora", "epochs": 1, "max_steps": None, "lr": 0.002, "lora_r": 16,
        "max_length": 256, "pack_to_max_length": True}


def write_card(path: Path, **changes) -> Path:
    card = {**CARD, **changes}
    lines = [f"id: {card['id']}", f"base: '{card['base']}'"]
    for key in ("name", "creator"):
        lines.append(f"{key}: {{zh: '{card[key]['zh']}', en: '{card[key]['en']}'}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): (path.stat().st_mtime_ns,
                                            hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """A finished run folder as the pipeline leaves it (the files that matter here)."""
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run"
    (run / "merged").mkdir(parents=True)
    (run / "merged" / "config.json").write_text("{}")
    (run / "merged" / "model.safetensors").write_bytes(b"weights")
    (run / "data").mkdir()
    (run / "data" / "train.json").write_text("[]")
    (run / "xtuner_config.py").write_text("# config\n")
    manifest = {"card": parse_card(CARD).model_dump(), "hyperparameters": USED}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def train(card: Path, run: Path, *extra: str) -> int:
    return main(["train", "--card", str(card), "--out", str(run), *extra])


def dataset(tmp_path: Path, text: str, name: str = "data.json") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("[]", "the dataset has no samples"),
    ("[{\"conversation\": [{\"input\": \"Hi\", ", "not valid JSON"),
    ('{"conversation": []}', "expected a JSON list"),
    ('[{"conversation": []}]', "sample 0 needs a non-empty 'conversation' list"),
    ('[{"conversation": [{"input": "Hi", "output": "Hello"}]}, {"conversation": [{"input": "Hi"}]}]',
     "sample 1, turn 0: 'output' must be non-empty text"),
])
def test_malformed_or_empty_dataset(finished_run, tmp_path, capsys, content, message):
    before = snapshot(finished_run)
    card = write_card(tmp_path / "card.yaml")
    assert train(card, finished_run, "--dataset", dataset(tmp_path, content), "--force") == 2
    assert message in capsys.readouterr().err
    assert snapshot(finished_run) == before


def test_missing_dataset_file(finished_run, tmp_path, capsys):
    card = write_card(tmp_path / "card.yaml")
    assert train(card, finished_run, "--dataset", str(tmp_path / "nope.json"), "--force") == 2
    assert "no such dataset file" in capsys.readouterr().err


@pytest.mark.parametrize("base, message", [
    ("./models/not-downloaded", "no such model folder"),
    ("qwen9-tiny", "neither a preset"),
    ("qwen2.5-7b-instruct", "huggingface-cli download Qwen/Qwen2.5-7B-Instruct"),
])
def test_missing_base_or_unknown_preset(finished_run, tmp_path, capsys, base, message):
    before = snapshot(finished_run)
    card = write_card(tmp_path / "card.yaml", base=base)
    assert train(card, finished_run, "--force") == 2
    err = capsys.readouterr().err
    assert message in err and base in err
    assert snapshot(finished_run) == before


def test_card_with_an_empty_name(finished_run, tmp_path, capsys):
    before = snapshot(finished_run)
    card = write_card(tmp_path / "card.yaml", name={"zh": "小葱", "en": " "})
    assert train(card, finished_run, "--force") == 2
    assert "name.en: must not be empty" in capsys.readouterr().err
    assert snapshot(finished_run) == before


def test_unknown_method(finished_run, tmp_path, capsys):
    card = write_card(tmp_path / "card.yaml")
    assert train(card, finished_run, "--method", "dora", "--force") == 2
    assert "method 'dora': use qlora, lora, full" in capsys.readouterr().err


def test_same_request_reuses_the_finished_run(finished_run, tmp_path, capsys):
    before = snapshot(finished_run)
    card = write_card(tmp_path / "card.yaml")
    assert train(card, finished_run, "--lr", "0.002", "--method", "qlora") == 0
    assert "already trained" in capsys.readouterr().out
    assert snapshot(finished_run) == before


@pytest.mark.parametrize("extra, card_changes, named", [
    (["--lr", "0.001"], {}, "lr: 0.002 in the run, 0.001 requested"),
    (["--method", "full"], {}, "method: 'qlora' in the run, 'full' requested"),
    (["--max-length", "512", "--no-pack"], {}, "pack_to_max_length: True in the run, False requested"),
    ([], {"creator": {"zh": "某人", "en": "Someone"}}, "card creator.en: 'Master No-Scallion' in the run"),
])
def test_different_request_on_a_finished_run_is_refused(finished_run, tmp_path, capsys, extra,
                                                        card_changes, named):
    before = snapshot(finished_run)
    card = write_card(tmp_path / "card.yaml", **card_changes)
    assert train(card, finished_run, *extra) == 2
    err = capsys.readouterr().err
    assert named in err and "--force" in err and "--out" in err
    assert snapshot(finished_run) == before


def test_pipeline_checks_its_input_before_writing(finished_run, tmp_path):
    """The training-env entry point refuses the same way when run directly."""
    before = snapshot(finished_run)
    card = write_card(tmp_path / "card.yaml")
    args = ["--card", str(card), "--base-model", str(tmp_path / "no-base"), "--out", str(finished_run)]
    with pytest.raises(pipeline.PipelineError, match="no such folder"):
        pipeline.main(args + ["--force"])
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    args[3] = str(base)
    with pytest.raises(pipeline.PipelineError, match="has no samples"):
        pipeline.main(args + ["--force", "--dataset", dataset(tmp_path, "[]")])
    with pytest.raises(pipeline.PipelineError, match="lr: 0.002 in the run, 0.0001 requested"):
        pipeline.main(args + ["--lr", "1e-4"])
    assert snapshot(finished_run) == before


def test_a_base_folder_with_code_of_its_own_needs_the_card_to_trust_it(finished_run, tmp_path):
    """Refused before anything is written: XTuner's merge would run that code unasked."""
    before = snapshot(finished_run)
    base = tmp_path / "custom-base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"auto_map": {
        "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}}))
    card = write_card(tmp_path / "card.yaml", base=str(base))
    args = ["--card", str(card), "--base-model", str(base), "--out", str(finished_run)]
    with pytest.raises(pipeline.PipelineError, match=r"config\.json(.|\n)*add `trust_remote_code: "
                                                     r"true` to the card"):
        pipeline.main(args)
    card.write_text(card.read_text(encoding="utf-8") + "trust_remote_code: true\n", encoding="utf-8")
    # declared: on to the next check (this run was trained from another card)
    with pytest.raises(pipeline.PipelineError, match="card base: 'smollm2-135m-instruct' in the run"):
        pipeline.main(args)
    assert snapshot(finished_run) == before


def test_progress_lines_and_a_resumed_loss_curve(tmp_path, capsys):
    """XTuner's log lines become step/loss/ETA lines; a resumed run's steps replace the old ones."""
    line = ("11/28 01:03:21 - mmengine - INFO - Iter(train) [ {step}/117]  lr: 1.9e-03  eta: 0:02:29  "
            "time: 1.5000  data_time: 0.0123  grad_norm: 1.3274  loss: {loss}")
    watcher = xtuner_log.TrainWatcher()
    watcher(line.format(step=10, loss=1.8398))
    assert "step 10/117  loss 1.840  1.50 s/step  ETA 2m40s" in capsys.readouterr().out
    log = tmp_path / "train.log"
    log.write_text("\n".join([line.format(step=5, loss=2.3), line.format(step=10, loss=1.9),
                              "Traceback: killed", line.format(step=10, loss=1.8),
                              line.format(step=15, loss=1.5)]))
    assert [(p["step"], p["loss"]) for p in xtuner_log.loss_curve(log)] == [(5, 2.3), (10, 1.8), (15, 1.5)]


@pytest.mark.parametrize("command", ["train", "merge", "data"])
def test_a_folder_that_is_not_personas_is_refused_before_anything_starts(tmp_path, capsys,
                                                                       monkeypatch, command):
    """`--out p` on a folder holding someone's p/work/x: refused by the CLI itself, with nothing
    deleted and no training environment started."""
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    from persona import envs

    monkeypatch.setattr(envs, "run_module", lambda *a, **k: pytest.fail("the pipeline was started"))
    folder = tmp_path / "p"
    (folder / "work").mkdir(parents=True)
    (folder / "work" / "x").write_text("someone's file")
    before = snapshot(folder)
    card = write_card(tmp_path / "card.yaml")
    assert main([command, "--card", str(card), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"persona: error: {folder} is not empty and is not a persona run folder" in err
    assert "choose an empty or new --out folder" in err and "Traceback" not in err
    assert snapshot(folder) == before and not (tmp_path / "home" / "envs").exists()


class Started(Exception):
    """Raised by the stand-in for starting the API: the command got past its checks."""


@pytest.fixture
def served_run(finished_run, monkeypatch) -> Path:
    """The finished run as the card's default run folder too (serve --adapters takes no --out),
    with what an adapter plan reads; nothing heavy can start."""
    from persona import commands, envs

    (finished_run / "adapter").mkdir()
    (finished_run / "adapter" / "adapter_config.json").write_text('{"r": 16}')
    (finished_run / "merged" / "chat_template.jinja").write_text("{{ messages }}")
    shutil.copytree(finished_run, run_dir(CARD["id"]))
    monkeypatch.setattr(envs, "run_module", lambda *a, **k: pytest.fail("the pipeline was started"))
    monkeypatch.setattr(commands.base_models, "resolve", lambda base: "base")

    def start(*args, **kwargs):
        raise Started

    monkeypatch.setattr(commands, "_start_api", start)
    return finished_run


def serving(command: str, card: Path, run: Path, tmp_path: Path) -> list[str]:
    """The command line of each command that serves (or trains) the card's run."""
    if command == "serve --adapters":
        return ["serve", "--adapters", str(card)]
    extra = ["--report-dir", str(tmp_path / "report")] if command == "eval" else []
    return [command, "--card", str(card), "--out", str(run), *extra]


COMMANDS = ["train", "serve", "up", "eval", "serve --adapters"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_run_of_an_edited_card_is_refused_by_every_command(served_run, tmp_path, capsys,
                                                            command):
    before = snapshot(served_run)
    card = write_card(tmp_path / "card.yaml", name={"zh": "小葱", "en": "Renamed"})
    assert main(serving(command, card, served_run, tmp_path)) == 2
    err = capsys.readouterr().err
    run = RunFolder.at(served_run if command != "serve --adapters" else run_dir(CARD["id"]))
    found = differences(run, load_card(card))
    assert found == ["card name.en: 'Xiaocong' in the run, 'Renamed' now"]
    assert f"persona: error: {refusal(run, found)}\n" == err  # the one message, word for word
    assert snapshot(served_run) == before


@pytest.mark.parametrize("command", COMMANDS[1:])
def test_the_same_card_goes_on_to_serve_its_run(served_run, tmp_path, command):
    card = write_card(tmp_path / "card.yaml")
    with pytest.raises(Started):
        main(serving(command, card, served_run, tmp_path))


@pytest.mark.parametrize("content, why", [
    ('{"card": {"id": "xiao', "not valid JSON"),
    ("[]", "a JSON list, not an object"),
    ('{"hyperparameters": {}}', "it records no card"),
])
@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreadable_manifest_says_how_to_recover(served_run, tmp_path, capsys, command,
                                                    content, why):
    for root in (served_run, run_dir(CARD["id"])):
        (root / "manifest.json").write_text(content)
    card = write_card(tmp_path / "card.yaml")
    assert main(serving(command, card, served_run, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "manifest.json cannot be read (" + why in err and "Traceback" not in err
    assert "retrain the run in place with `persona train --force`" in err and "--out DIR" in err


@pytest.mark.parametrize("command", COMMANDS[1:])
def test_a_run_in_training_is_not_served(served_run, tmp_path, capsys, hold_run, command):
    root = RunFolder.at(served_run if command != "serve --adapters" else run_dir(CARD["id"])).root
    training = hold_run(root, "train")
    card = write_card(tmp_path / "card.yaml")
    assert main(serving(command, card, served_run, tmp_path)) == 2  # never got to start vLLM
    err = capsys.readouterr().err
    assert err.startswith(f"persona: error: {root} is in use by pid {training.pid} (train since ")
    assert "python -c " in err and "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS[1:])
def test_two_servers_of_one_run_are_allowed(served_run, tmp_path, hold_run, command):
    hold_run(RunFolder.at(served_run if command != "serve --adapters" else run_dir(CARD["id"])).root,
             "serve", shared=True)
    with pytest.raises(Started):
        main(serving(command, write_card(tmp_path / "card.yaml"), served_run, tmp_path))


@pytest.mark.parametrize("command", ["serve", "up", "eval"])
def test_a_server_holds_its_run_while_it_serves(served_run, tmp_path, monkeypatch, command):
    from persona import commands

    run = RunFolder.at(served_run)
    job = "eval" if command == "eval" else "serve"

    def start(*args, **kwargs):
        with pytest.raises(RunFolderError, match=fr"in use by pid {os.getpid()} \({job} since "):
            with run.lock("train"):
                pass
        raise Started

    monkeypatch.setattr(commands, "_start_api", start)
    with pytest.raises(Started):
        main(serving(command, write_card(tmp_path / "card.yaml"), served_run, tmp_path))
    with run.lock("train"):  # let go once it stopped
        pass
