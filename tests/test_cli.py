"""The `persona` command: subcommands exist, bad input fails with a message and writes nothing,
and the CLI itself never imports a heavy stack."""

import subprocess
import sys

import pytest

from persona.cli import COMMANDS, main

HEAVY = ("torch", "transformers", "vllm", "xtuner", "chainlit", "mmengine", "bitsandbytes")


def test_subcommands_of_the_design_card():
    assert {"data", "train", "merge", "serve", "ui", "eval", "up"} <= set(COMMANDS)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_cli_imports_no_heavy_stack():
    code = ("import sys, persona.cli; from persona.cli_args import build_parser; "
            "build_parser('persona', persona.cli.COMMANDS); "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["train", "serve", "up", "data", "export"])
def test_bad_card_fails_cleanly_and_writes_nothing(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    card = tmp_path / "card.yaml"
    card.write_text("id: Bad Id\nname: {zh: '', en: X}\ncreator: {zh: 某人, en: Someone}\n")
    assert main([command, "--card", str(card)]) == 2
    err = capsys.readouterr().err
    assert "id:" in err and "name.zh:" in err
    assert not (tmp_path / "home").exists()


def test_unknown_base_preset_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    card = tmp_path / "card.yaml"
    card.write_text("id: abc\nname: {zh: 甲, en: A}\ncreator: {zh: 乙, en: B}\nbase: no-such-model\n")
    assert main(["train", "--card", str(card)]) == 2
    assert "neither a preset" in capsys.readouterr().err
