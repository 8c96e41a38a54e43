"""The chat template written next to the merged model: ChatML exactly as XTuner's `qwen_chat` and
`internlm2_chat` templates render the training samples, so serving sends the tokens training saw.

Training renders a turn as
  [BOS][<|im_start|>system\\n{system}<|im_end|>\\n]<|im_start|>user\\n{input}<|im_end|>\\n<|im_start|>assistant\\n
followed by `{output}<|im_end|>` and the separator `\\n`. BOS opens the conversation only where
XTuner puts one: InternLM2's `<s>`; Qwen2 tokenizers have none, and SmolLM2's (`<|im_start|>`)
is patched away (train/cpu_patches.py). The system block appears only when a system message is
sent or the card sets a default one: the base's own default (SmolLM2's "You are a helpful AI
assistant named SmolLM...", Qwen2.5's "You are Qwen, created by Alibaba Cloud...") is never
injected. Pure Python (json only): the app env imports this.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def _literal(text: str) -> str:
    """A Jinja string literal (JSON escaping is valid Jinja)."""
    return json.dumps(text, ensure_ascii=False)


def chatml_template(default_system: str | None = None, bos: str = "") -> str:
    """`bos`: the text of the BOS token training puts first ("" for none)."""
    default = "{{- " + _literal(bos) + " -}}" if bos else ""
    if default_system:
        block = f"{IM_START}system\n{default_system}{IM_END}\n"
        default += ("{%- if not messages or messages[0]['role'] != 'system' -%}"
                   "{{- " + _literal(block) + " -}}{%- endif -%}")
    return (
        default
        + "{%- for message in messages -%}"
        "{{- '" + IM_START + "' + message['role'] + '\\n' + message['content'] + '" + IM_END + "\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '" + IM_START + "assistant\\n' -}}{%- endif -%}"
    )


def bos_of(template: str) -> str:
    """The BOS text a chatml_template puts first ("" for none): an export's other prompt
    formats (an Ollama Modelfile) must begin the same way."""
    match = re.match(r'\{\{- ("(?:[^"\\]|\\.)*") -\}\}', template)
    return json.loads(match.group(1)) if match else ""


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def install_chat_template(folder: Path, default_system: str | None = None, bos: str = "") -> str:
    """Give a tokenizer folder the training template, no automatic BOS and <|im_end|> as EOS.

    Written twice, as the tokenizer_config.json key (transformers 4.x) and as
    chat_template.jinja, which newer transformers (vLLM's) prefer over the key.
    """
    folder = Path(folder)
    template = chatml_template(default_system, bos)
    config = _read(folder / "tokenizer_config.json")
    config.update(chat_template=template, add_bos_token=False, eos_token=IM_END)
    _write(folder / "tokenizer_config.json", config)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return template


def token_id(folder: Path, token: str) -> int:
    vocab = _read(Path(folder) / "tokenizer.json")
    for added in vocab.get("added_tokens", []):
        if added["content"] == token:
            return added["id"]
    if token in vocab.get("model", {}).get("vocab", {}):
        return vocab["model"]["vocab"][token]
    raise KeyError(f"{token} is not in the tokenizer of {folder}")


def stop_at_im_end(folder: Path) -> int:
    """Make generation stop at <|im_end|> (the end of every trained answer); return its id."""
    folder = Path(folder)
    im_end = token_id(folder, IM_END)
    for name in ("generation_config.json", "config.json"):
        content = _read(folder / name)
        content["eos_token_id"] = im_end
        if name == "generation_config.json":
            content.setdefault("pad_token_id", im_end)
        _write(folder / name, content)
    return im_end
