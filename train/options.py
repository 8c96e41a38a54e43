"""The training options, declared once: `persona train`'s flags, the pipeline's flags, the
options a command line gives and the run's options.json all come from TrainOptions' fields.
Fields marked `cli` are the ones a user sets (the flag is the field's name with dashes, or
`flag`); the rest follow from the base preset and the device. Pure Python.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from persona.base_models import preset_of, prompt_template

METHODS = ("qlora", "lora", "full")
LORA_TARGETS = ("all", "attention")
FULL_LR = 2e-5  # full fine-tuning's default: LoRA's rate would wreck all the weights
PROMPT_TEMPLATES = ("qwen_chat", "internlm2_chat")  # the ChatML ones train/chat_template.py renders
AT_LEAST_ONE = ("epochs", "lora_r", "max_length", "batch_size", "accumulative_counts", "save_steps")


def _flag(default: Any, description: str, flag: str | None = None) -> Any:
    """A field the user sets on the command line (the help is its description)."""
    return Field(default, description=description,
                 json_schema_extra={"cli": True, **({"flag": flag} if flag else {})})


class TrainOptions(BaseModel):
    """Hyperparameters. The defaults were measured on SmolLM2-135M-Instruct, 2 CPU cores: one
    epoch of packed 256-token steps (520 on the default card) learns the
    identity for held-out zh and en phrasings; fewer steps or a lower rate left held-out Chinese
    answers or stability cases failing, and 512-token packs halve the number of updates for the
    same time. Invalid values raise ValueError with a message that names the field and the fix."""

    model_config = ConfigDict(extra="forbid")

    # qlora: 4-bit NF4 base + LoRA; lora: float base + LoRA; full: no LoRA
    method: str = _flag("qlora", "qlora, lora or full (default: qlora)")
    epochs: int = _flag(1, "training epochs (default: the preset's)")
    max_steps: int | None = _flag(None, "stop after this many optimizer steps (a quick smoke run)")
    # high for LoRA, right for one short epoch on a 135M model; 1e-3 needed 2 epochs
    lr: float = _flag(2e-3, "learning rate (default: the preset's; 2e-5 for full)")
    lora_r: int = _flag(16, "LoRA rank (default: 16)")
    lora_alpha: int = _flag(32, "LoRA alpha (default: 32)")
    lora_dropout: float = _flag(0.05, "dropout on LoRA's input (default: 0.05)")
    lora_targets: str = _flag(
        "all", "which linear layers get LoRA: all, or attention (the projections of q, k, v and "
               "the output; the MLPs, where most facts sit, stay as they are) (default: all)")
    # more optimizer steps per second than 512
    max_length: int = _flag(256, "tokens per packed sequence (default: the preset's)")
    batch_size: int = _flag(1, "sequences per forward pass on each device (default: 1)")
    accumulative_counts: int = _flag(1, "gradient accumulation steps (default: 1)")
    pack_to_max_length: bool = _flag(
        True, "pack samples into max-length sequences (default) or pad each one", flag="pack")
    warmup_ratio: float = 0.05
    activation_checkpointing: bool = False  # recomputation costs time; 135M needs no memory saving
    eval_chat: bool = _flag(
        True, "XTuner's EvaluateChatHook: two identity questions before and after training "
              "(default: on)")
    log_interval: int = 5
    seed: int = _flag(42, "data order and training seed (default: 42)")
    prompt_template: str = "qwen_chat"  # XTuner's PROMPT_TEMPLATE name; the base preset's
    save_steps: int = _flag(20, "a resumable checkpoint every this many steps (default: 20)")
    save_total_limit: int = 2  # checkpoints kept
    device: str = "cpu"  # cpu: OptimWrapper (autocast when bfloat16); cuda: AMP, CUDA NF4
    # cuda: the AMP and 4-bit compute dtype. cpu: bfloat16 = the matrix products but the
    # output head's under bfloat16 autocast (train/cpu_autocast.py), weights, 4-bit compute and
    # optimizer in float32. The pipeline resolves auto (train/pipeline.py): float32 on cpu,
    # bfloat16 on cuda (float16 where the GPU lacks it). lean_model: train/lean_model.py
    # (chunked loss over the labelled positions only, frozen embedding and head kept in that
    # dtype); None = on for cuda where the head is frozen (qlora, lora); off for full
    # fine-tuning, and off on cpu: over three seeds it lost 10-13 general answers (the
    # default 4-14) and failed the adversarial gate on seed 42 (docs/training.md, "Sixth round");
    # `--lean-model` there is 14 % faster a step, 4-11 % a training.
    precision: str = _flag(
        "auto", "auto, float32, bfloat16 or float16 (cuda only). auto: float32 on CPU; bfloat16 "
                "on CUDA, float16 where the GPU lacks it. bfloat16 on CPU: autocast, where the "
                "CPU multiplies bfloat16 natively (AVX512-BF16 or AMX) (default: auto)")
    lean_model: bool | None = _flag(
        None, "the loss over the labelled positions only, a chunk at a time (train/lean_model.py); "
              "default: on for CUDA LoRA/QLoRA, off on CPU and for full fine-tuning")
    # After training, an ORPO pass from its adapter (train/step_prefer.py); 0 = none.
    preference_beta: float = _flag(
        0.0, "after training, a short preference pass (ORPO) that pushes the persona's "
             "introduction away from everyday questions, with this weight on its odds-ratio "
             "term, e.g. 0.25; 0 for none (default: 0)")

    def __init__(self, **values: Any) -> None:
        # pydantic wraps a validator's ValueError in a report; users get the message alone
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ValueError(_message(error)) from None

    @model_validator(mode="after")
    def _check(self) -> TrainOptions:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: use {', '.join(METHODS)}")
        if self.lora_targets not in LORA_TARGETS:
            raise ValueError(f"lora_targets {self.lora_targets!r}: use {' or '.join(LORA_TARGETS)}")
        if self.prompt_template not in PROMPT_TEMPLATES:
            raise ValueError(f"prompt template {self.prompt_template!r}: use "
                             f"{' or '.join(PROMPT_TEMPLATES)} (both ChatML)")
        for name in AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)}: must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps {self.max_steps}: must be at least 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr {self.lr}: must be between 0 and 1 (e.g. 2e-4)")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout {self.lora_dropout}: between 0 (none) and 1, e.g. 0.05")
        if not 0 <= self.preference_beta <= 10:
            raise ValueError(f"preference_beta {self.preference_beta}: between 0 (no preference "
                             "pass) and 10, e.g. 0.25")
        if self.preference_beta and self.method == "full":
            raise ValueError("preference_beta: the preference pass trains a LoRA adapter; "
                             "method 'full' has none (use qlora or lora, or leave it at 0)")
        self._check_device()
        if self.lean_model is None:
            self.lean_model = self.device == "cuda" and self.method != "full"
        elif self.lean_model and self.method == "full":
            raise ValueError("lean_model: its loss takes no gradient for the output head, which "
                             "method 'full' trains (use qlora or lora, or leave lean_model out)")
        return self

    def _check_device(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r}: use cpu or cuda")
        if self.precision not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"precision {self.precision!r}: use auto, float32, float16 or bfloat16")
        if self.device == "cpu" and self.precision == "float16":
            raise ValueError("precision 'float16' needs device cuda; CPU training is float32 or "
                             "bfloat16")

    @property
    def dtype(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "float32" if self.device == "cpu" else "bfloat16"


def _message(error: ValidationError) -> str:
    """The first problem: a validator's own message as it is, else `field: pydantic's words`."""
    first = error.errors()[0]
    raised = (first.get("ctx") or {}).get("error")
    if isinstance(raised, ValueError):
        return str(raised)
    where = ".".join(map(str, first["loc"]))
    return f"{where}: {first['msg']}" if where else first["msg"]


def user_options() -> list[str]:
    """The fields a user may set (the ones with a flag)."""
    return [name for name, field in TrainOptions.model_fields.items()
            if (field.json_schema_extra or {}).get("cli")]


def resolve_options(base: str, given: dict, device: str = "cpu") -> TrainOptions:
    """TrainOptions from TrainOptions' defaults, the base preset's, then `given` (None = unset).

    Raises ValueError with a message a user can act on.
    """
    given = {name: value for name, value in given.items() if value is not None}
    unknown = set(given) - set(TrainOptions.model_fields)
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
    preset = preset_of(base)
    values = {"prompt_template": prompt_template(base), **(preset.train_defaults if preset else {})}
    if given.get("method") == "full" and "lr" not in given:
        values["lr"] = FULL_LR
    return TrainOptions(**{**values, **given, "device": device})
