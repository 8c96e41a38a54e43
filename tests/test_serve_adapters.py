"""Several personas on one server: which runs can share a base, and how they are served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persona.card import parse_card
from persona.run_folder import RunFolder
from persona.serve.adapters import AdapterError, plan
from persona.serve.server import ServeOptions, vllm_command
from persona.train.chat_template import chatml_template

TEMPLATE = "{%- for message in messages -%}{{ message['content'] }}{%- endfor -%}"


@pytest.fixture(autouse=True)
def persona_home(tmp_path, monkeypatch):
    """plan() writes the shared template under PERSONA_HOME: never into the user's cache."""
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))


def card(card_id: str, base: str = "smollm2-135m-instruct"):
    return parse_card({"id": card_id, "name": {"zh": "甲", "en": "A"}, "creator": {"zh": "乙", "en": "B"},
                       "base": base})


def finished_run(root: Path, card_id: str, rank: int = 16, template: str = TEMPLATE) -> RunFolder:
    run = RunFolder(root / card_id)
    run.adapter.mkdir(parents=True)
    run.merged.mkdir()
    (run.adapter / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    run.chat_template.write_text(template)
    run.write_options({"method": "qlora", "lora_r": rank})
    return run


def test_each_card_becomes_an_adapter_named_by_its_id(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    # Each persona's template injects its own default system prompt; the shared one injects none.
    runs = [finished_run(tmp_path, "lingxi", template=chatml_template("You are Lingxi.")),
            finished_run(tmp_path, "xiaocong", template=chatml_template("You are Xiaocong."))]
    served = plan([card("lingxi"), card("xiaocong")], runs, tmp_path / "smollm2-135m-instruct")
    assert served.adapters == (("lingxi", runs[0].adapter), ("xiaocong", runs[1].adapter))
    assert served.base_name == "smollm2-135m-instruct"
    assert served.chat_template.read_text(encoding="utf-8") == chatml_template(None)
    assert served.max_lora_rank == 16
    argv = vllm_command(ServeOptions(model=Path(served.base), served_name=served.base_name, api_key="k",
                                     lora_modules=served.adapters, chat_template=served.chat_template,
                                     max_lora_rank=served.max_lora_rank), Path("/env"))
    assert "--enable-lora" in argv and f"lingxi={runs[0].adapter}" in argv


def test_rank_is_rounded_up_to_one_vllm_accepts(tmp_path):
    runs = [finished_run(tmp_path, "a", rank=12), finished_run(tmp_path, "b", rank=24)]
    assert plan([card("a"), card("b")], runs, "base").max_lora_rank == 32


def test_the_rank_is_the_served_adapters_own(tmp_path):
    """options.json may already describe a retraining under way; the adapter on disk is served."""
    runs = [finished_run(tmp_path, "a"), finished_run(tmp_path, "b", rank=48)]
    runs[1].write_options({"method": "qlora", "lora_r": 8})
    assert plan([card("a"), card("b")], runs, "base").max_lora_rank == 64


def test_different_bases_cannot_share_a_server(tmp_path):
    runs = [finished_run(tmp_path, "a"), finished_run(tmp_path, "b")]
    with pytest.raises(AdapterError, match="share one base"):
        plan([card("a"), card("b", base="other-model")], runs, "base")


def test_cards_that_disagree_on_the_bases_own_code_cannot_share_a_server(tmp_path):
    runs = [finished_run(tmp_path, "a"), finished_run(tmp_path, "b")]
    trusting = card("b", base="someone/custom").model_copy(update={"trust_remote_code": True})
    with pytest.raises(AdapterError, match="disagree on trust_remote_code"):
        plan([card("a", base="someone/custom"), trusting], runs, "base")


def test_different_chat_templates_cannot_share_a_server(tmp_path):
    runs = [finished_run(tmp_path, "a"), finished_run(tmp_path, "b", template=TEMPLATE + "x")]
    with pytest.raises(AdapterError, match="different chat formats"):
        plan([card("a"), card("b")], runs, "base")


def test_a_run_without_adapter_is_named(tmp_path):
    run = finished_run(tmp_path, "a")
    (run.adapter / "adapter_config.json").unlink()
    with pytest.raises(AdapterError, match="no PEFT adapter"):
        plan([card("a")], [run], "base")


def test_the_same_card_twice_is_refused(tmp_path):
    run = finished_run(tmp_path, "a")
    with pytest.raises(AdapterError, match="once"):
        plan([card("a"), card("a")], [run, run], "base")


def test_base_name_never_hides_a_persona(tmp_path):
    run = finished_run(tmp_path, "smollm2")
    assert plan([card("smollm2")], [run], tmp_path / "smollm2").base_name == "smollm2-base"


def test_cli_refuses_a_bad_adapter_card_before_anything_starts(tmp_path, monkeypatch, capsys):
    from persona.cli import main

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: Bad Id\nname: {zh: 甲, en: A}\ncreator: {zh: 乙, en: B}\n")
    good = Path(__file__).resolve().parent.parent / "cards" / "lingxi.yaml"
    assert main(["serve", "--adapters", f"{good},{bad}"]) == 2
    assert "id:" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_cli_refuses_cards_on_different_bases_before_training_any(tmp_path, monkeypatch, capsys):
    from persona import commands
    from persona.cli import main

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the cards were checked")

    monkeypatch.setattr(commands, "train", no_training)
    cards = []
    for card_id, base in (("a", "smollm2-135m-instruct"), ("b", "qwen2.5-0.5b-instruct")):
        path = tmp_path / f"{card_id}.yaml"
        path.write_text(f"id: {card_id}\nname: {{zh: 甲, en: A}}\ncreator: {{zh: 乙, en: B}}\nbase: {base}\n")
        cards.append(str(path))
    assert main(["serve", "--adapters", ",".join(cards)]) == 2
    assert "share one base" in capsys.readouterr().err
