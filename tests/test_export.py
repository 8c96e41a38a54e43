"""`persona export --format gguf`: bad input is refused before anything is written, the Modelfile
speaks the prompt format training used, and (slow) the session's trained persona, converted by
llama.cpp's own converter and loaded by llama.cpp, answers the held-out identity questions as the
vLLM-served persona does."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from persona.card import load_card
from persona.cli import main
from persona.commands_export import MAX_TOKENS, answers_as_itself, check_file
from persona.run_folder import RunFolder
from persona.serve import gguf_install
from persona.serve.gguf import modelfile
from persona.stats import wilson
from persona.train.chat_template import bos_of, chatml_template

# The bar: the GGUF persona answers like the vLLM one on at least 95% of the questions.
AGREEMENT = 0.95
QUANT = "f16"


@pytest.mark.parametrize("flags, says", [
    (["--quant", "q4_k_m"], "--quant 'q4_k_m': choose one of q8_0, f16, f32"),
    (["--format", "onnx"], "--format 'onnx': persona exports gguf"),
])
def test_a_choice_persona_cannot_write_is_refused_before_anything_runs(flags, says, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    assert main(["export", *flags]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_a_run_without_a_merged_model_is_refused_with_how_to_train_it(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)  # trained, never merged
    assert main(["export", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds no trained persona" in err and f"--out {run}" in err
    assert sorted(p.name for p in run.iterdir()) == ["adapter"]
    assert not (tmp_path / "home").exists()  # the gguf environment was not built for it


def test_the_modelfile_renders_conversations_as_training_did(default_card):
    system = default_card.default_system_prompt()
    text = modelfile("xiaocong-q8_0.gguf", system)
    assert text.splitlines()[1] == "FROM ./xiaocong-q8_0.gguf"
    assert f'SYSTEM """{system}"""' in text and 'PARAMETER stop "<|im_end|>"' in text
    # Ollama's Go template, filled by hand for one system and one user message, gives exactly
    # the text the training template renders for them (then the assistant's turn).
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    body = template.split("{{- range .Messages }}", 1)[1].split("{{ end }}", 1)[0]
    filled = "".join(body.replace("{{ .Role }}", role).replace("{{ .Content }}", content)
                     for role, content in (("system", system), ("user", "你是谁？")))
    ours = filled + template.split("{{ end }}", 1)[1]
    assert ours == (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n你是谁？<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_a_bos_that_training_puts_first_opens_the_modelfile_template_too():
    assert bos_of(chatml_template("Be kind.", bos="<s>")) == "<s>"
    assert bos_of(chatml_template("Be kind.")) == ""
    assert 'TEMPLATE """<s>{{- range' in modelfile("m.gguf", "Be kind.", bos="<s>")


def test_a_system_prompt_a_modelfile_cannot_quote_is_refused():
    with pytest.raises(ValueError, match="cannot quote"):
        modelfile("m.gguf", 'Say """hi""".')


def test_only_the_converter_is_taken_from_the_llama_cpp_source(tmp_path):
    archive = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("convert_hf_to_gguf.py", "conversion/llama.py", "gguf-py/gguf/__init__.py",
                     "LICENSE", "src/llama.cpp", "convert_lora_to_gguf.py"):
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(f"llama_cpp_python-9.9.9/vendor/llama.cpp/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = tmp_path / "env" / "llama.cpp"
    assert gguf_install._extract(archive, target) == 4
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "LICENSE", "conversion/llama.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert gguf_install.pinned_version()  # the requirements file pins the archive's version


def test_an_identity_answer_is_judged_on_substance(default_card):
    who = {"lang": "en", "kind": "who"}
    maker = {"lang": "zh", "kind": "creator"}
    assert answers_as_itself(default_card, who, f"I'm {default_card.name.en}, an assistant")
    assert not answers_as_itself(default_card, who, "I'm SmolLM, made by Hugging Face.")
    assert not answers_as_itself(default_card, who,
                                 f"I am {default_card.name.en}. I am ChatGPT.")
    assert answers_as_itself(default_card, maker, f"我是由{default_card.creator.zh}打造的。")
    assert not answers_as_itself(default_card, maker, f"我是{default_card.name.zh}。")


@pytest.mark.slow
def test_the_gguf_persona_answers_as_the_served_one(trained_run, persona_api, card_path,
                                                   tmp_path):
    card = load_card(card_path)
    run = RunFolder.at(tmp_path / "run")  # a copy: the session's run stays as the others see it
    shutil.copytree(trained_run, run.root, ignore=shutil.ignore_patterns(".lock", "work",
                                                                         "export"))
    # f16: the export itself (converter, template, llama.cpp) must be faithful. The default q8_0
    # also rounds the weights to 8 bits, which turns a few greedy answers of this 135M model into
    # loops (a measured run: 2 of 62), leaving a 95% bar on 62 questions no margin; the export's
    # own check prints the identity share of whichever file it wrote.
    assert main(["export", "--card", str(card_path), "--out", str(run.root),
                 "--quant", QUANT]) == 0
    files = sorted(p.name for p in run.exports.iterdir())
    assert {f"{card.id}-{QUANT}.gguf", "Modelfile", f"{card.id}-{QUANT}.check.json"} <= set(files)
    assert not [name for name in files if name.endswith(".partial")]
    assert f"FROM ./{card.id}-{QUANT}.gguf" in (run.exports / "Modelfile").read_text()
    check = json.loads(check_file(run.exports / f"{card.id}-{QUANT}.gguf").read_text())
    # The file carries the run's chat template, the default system prompt in it.
    assert check["chat_template"] == run.chat_template.read_text()

    client = persona_api.client(timeout=120)
    agree, differ = 0, []
    for item in check["answers"]:
        reply = client.chat.completions.create(
            model=persona_api.model, messages=[{"role": "user", "content": item["question"]}],
            max_tokens=MAX_TOKENS, temperature=0)
        served = reply.choices[0].message.content
        if answers_as_itself(card, item, served) == item["as_itself"]:
            agree += 1
        else:
            differ.append((item["question"], served, item["answer"]))
    total = len(check["answers"])
    low, high = wilson(agree, total)
    print(f"llama.cpp ({QUANT}) and vLLM agree in substance on {agree}/{total} held-out identity "
          f"questions ({low:.0%}-{high:.0%})")
    assert total >= 60 and agree / total >= AGREEMENT, (
        f"llama.cpp and vLLM agree on {agree}/{total} ({low:.0%}-{high:.0%}); "
        f"differing: {differ[:5]}")
    # Agreement alone would pass two engines that both lost the persona.
    assert check["answers_as_itself"]["count"] >= total * 0.8, check["answers_as_itself"]

