"""What `persona export --format gguf` writes beside the GGUF file, and the choices it takes.

The merged persona becomes one GGUF file for llama.cpp (and Ollama, LM Studio, ...): llama.cpp's
own converter writes it with the merged tokenizer's chat template inside, the persona's default
system prompt included, so a llama.cpp chat that sends no system prompt gets the persona. Ollama
reads its prompt format from a Modelfile instead: one is written beside the file, ChatML as
training renders it (train/chat_template.py), the card's default system prompt as its SYSTEM.

Pure Python: the app env imports this.
"""

from __future__ import annotations

from persona.errors import PersonaError

FORMATS = ("gguf",)
# What llama.cpp's converter writes directly (--outtype); q8_0 is the one a CPU user wants: a
# quarter of f32's memory traffic per token, nearly f32's answers.
QUANTS = ("q8_0", "f16", "f32")
DEFAULT_QUANT = "q8_0"

# Ollama's Go template for ChatML: every message as training rendered it (the Modelfile's SYSTEM
# comes first as a system message when the request has none), then the assistant's turn.
_CHATML = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
           "<|im_start|>assistant\n")


class ExportChoiceError(PersonaError, ValueError):
    """A format or quantisation persona cannot write; the message lists what it can."""


def check_choice(fmt: str, quant: str) -> None:
    if fmt not in FORMATS:
        raise ExportChoiceError(f"--format {fmt!r}: persona exports {', '.join(FORMATS)}")
    if quant not in QUANTS:
        raise ExportChoiceError(f"--quant {quant!r}: choose one of {', '.join(QUANTS)} "
                                f"({DEFAULT_QUANT} is the default: smallest, nearly f32's answers)")


def gguf_name(persona_id: str, quant: str) -> str:
    return f"{persona_id}-{quant}.gguf"


def _quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise ExportChoiceError(f"the {what} contains '\"\"\"', which an Ollama Modelfile "
                                "cannot quote; change it in the card")
    return f'"""{text}"""'


def modelfile(gguf_file: str, default_system: str, bos: str = "") -> str:
    """An Ollama Modelfile for the GGUF file beside it (`ollama create NAME -f Modelfile`).
    `bos`: the text training puts before the conversation (train/chat_template.py), "" for none."""
    return (f"# persona: `ollama create <name> -f Modelfile` in this folder, then `ollama run <name>`\n"
            f"FROM ./{gguf_file}\n"
            f"TEMPLATE {_quoted(bos + _CHATML, 'template')}\n"
            f"SYSTEM {_quoted(default_system, 'default system prompt')}\n"
            'PARAMETER stop "<|im_end|>"\n')
