"""One declaration of the training options: `persona train`'s flags, the pipeline's flags, the
options a command line gives and options.json all come from TrainOptions' fields."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from persona import base_models, envs
from persona.cli import COMMANDS, main
from persona.cli_args import add_command, model_argv
from persona.run_folder import RunFolder, write_json
from persona.train.options import TrainOptions, resolve_options, user_options
from persona.train.pipeline_args import build_parser, given_options, parse_args
from persona.train.progress import PipelineError
from persona.train.step_train import earlier

# The flags `persona train` had before they were derived, and the ones the pipeline added.
DOCUMENTED = {"--method", "--epochs", "--max-steps", "--lr", "--lora-r", "--max-length", "--pack",
              "--no-pack", "--save-steps"}
PIPELINE_ONLY_BEFORE = {"--lora-alpha", "--batch-size", "--accumulative-counts", "--eval-chat",
                        "--no-eval-chat", "--seed"}
GIVEN = {"method": "lora", "epochs": 2, "max_steps": 7, "lr": 1e-4, "lora_r": 8, "lora_alpha": 16,
         "max_length": 512, "batch_size": 2, "accumulative_counts": 4,
         "pack_to_max_length": False, "eval_chat": False, "seed": 7, "save_steps": 3,
         "lora_targets": "attention", "precision": "bfloat16", "preference_beta": 0.5,
         "lora_dropout": 0.1, "lean_model": True}


def train_parser() -> argparse.ArgumentParser:
    subparsers = argparse.ArgumentParser().add_subparsers()
    add_command(subparsers, "train", COMMANDS["train"])
    return subparsers.choices["train"]


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_user_option_is_a_flag_of_both_parsers():
    assert set(GIVEN) == set(user_options())  # a new user option must be added here too
    cli, pipeline = flags(train_parser()), flags(build_parser())
    assert DOCUMENTED | PIPELINE_ONLY_BEFORE <= cli
    assert DOCUMENTED | PIPELINE_ONLY_BEFORE <= pipeline
    option_flags = set(model_argv(TrainOptions, {name: True for name in user_options()}))
    assert option_flags <= cli and option_flags <= pipeline
    helps = {action.dest: action.help for action in train_parser()._actions}
    assert helps["lr"] == TrainOptions.model_fields["lr"].description


def test_given_options_cross_from_the_cli_to_the_pipeline_unchanged():
    cli = vars(train_parser().parse_args(model_argv(TrainOptions, GIVEN)))
    assert {name: cli[name] for name in GIVEN} == GIVEN
    argv = ["--card", "c", "--base-model", "b", "--out", "o", *model_argv(TrainOptions, cli)]
    assert given_options(parse_args(argv)) == GIVEN
    unset = given_options(parse_args(["--card", "c", "--base-model", "b", "--out", "o"]))
    assert unset == {name: None for name in GIVEN}  # left to the preset


def test_persona_train_hands_every_option_to_the_pipeline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(base_models, "resolve", lambda base: tmp_path / "base")
    handed = {}

    def run_module(env, module, args, **kwargs):
        handed["args"] = args
        return argparse.Namespace(returncode=1)

    monkeypatch.setattr(envs, "run_module", run_module)
    card = Path(__file__).resolve().parent.parent / "cards" / "xiaocong.yaml"
    assert main(["train", "--card", str(card), "--out", str(tmp_path / "run"),
                 "--lr", "0.001", "--no-pack", "--seed", "7", "--lora-alpha", "8"]) == 2
    assert "training xiaocong failed" in capsys.readouterr().err
    given = given_options(parse_args(handed["args"]))
    assert {name: value for name, value in given.items() if value is not None} == {
        "lr": 0.001, "pack_to_max_length": False, "seed": 7, "lora_alpha": 8}


def test_options_json_round_trip(tmp_path):
    options = resolve_options("smollm2-135m-instruct", {"method": "full", "max_steps": 5})
    run = RunFolder(tmp_path)
    run.write_options(options.model_dump())
    assert TrainOptions(**run.read_options()) == options
    assert run.read_options()["lr"] == 2e-5 and run.read_options()["prompt_template"] == "qwen_chat"


def test_bad_options_say_only_what_to_fix():
    with pytest.raises(ValueError) as refused:
        TrainOptions(method="dora")
    assert str(refused.value) == "method 'dora': use qlora, lora, full"  # no validation report
    with pytest.raises(ValueError, match="^unknown training options: colour$"):
        resolve_options("smollm2-135m-instruct", {"colour": "red"})
    for dropout in (-0.1, 1.0):
        with pytest.raises(ValueError, match=rf"^lora_dropout {dropout}: between 0 \(none\) and 1"):
            TrainOptions(lora_dropout=dropout)
    assert TrainOptions(lora_dropout=0).lora_dropout == 0


def _trained(tmp_path) -> RunFolder:
    run = RunFolder(tmp_path)
    run.config.write_text("# config\n")
    run.work.mkdir()
    (run.work / "iter_3.pth").write_bytes(b"")
    return run


def test_only_merge_reads_how_the_run_trained_from_options_json(tmp_path):
    run = _trained(tmp_path)
    run.write_options(TrainOptions(method="full", prompt_template="internlm2_chat").model_dump())
    run.write_manifest({"hyperparameters": {"method": "qlora"}, "dataset": {"samples": 9}})
    trained = earlier(run)
    assert trained.options["method"] == "full" and trained.options["prompt_template"] == "internlm2_chat"
    assert trained.checkpoint.name == "iter_3.pth" and trained.stats == {"samples": 9}


def test_only_merge_of_a_run_from_before_options_json_reads_its_manifest(tmp_path):
    run = _trained(tmp_path)
    with pytest.raises(PipelineError, match="records no training options"):
        earlier(run)
    run.write_manifest({"hyperparameters": {"method": "lora", "prompt_template": "qwen_chat"}})
    assert earlier(run).options == {"method": "lora", "prompt_template": "qwen_chat"}
    # kept in options.json, so a merge stopped once convert removed the manifest still has them
    run.manifest.unlink()
    write_json(run.stats, {"samples": 7})
    trained = earlier(run)
    assert trained.options == {"method": "lora", "prompt_template": "qwen_chat"}
    assert trained.stats == {"samples": 7}
    run.config.unlink()
    with pytest.raises(PipelineError, match="xtuner_config.py is missing; train first"):
        earlier(run)
