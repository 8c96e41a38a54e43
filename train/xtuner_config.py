"""Render a readable XTuner config (.py) for one persona run.

The shape is XTuner's stock `qwen1_5_0_5b_chat_qlora_alpaca_e3` (PART 1 settings, model,
data, optimizer, runtime), changed for this job: the card's self-cognition JSON instead of
alpaca, the base's prompt template (`qwen_chat` or `internlm2_chat`, both ChatML), builders from
train/cpu_patches.py, on CPU float32 weights and an OptimWrapper (with bfloat16 autocast where
`precision` says so, train/cpu_autocast.py), resumable checkpoints every
`save_steps`, and a cheap EvaluateChatHook. `method="full"` drops LoRA and quantization (XTuner's
stock full fine-tune shape). Pure Python.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from persona.train.options import TrainOptions

CONFIG = Template('''\
# XTuner config for persona "$persona_id", written by train/xtuner_config.py; edit the generator.
# Shape of XTuner's stock qwen1_5_0_5b_chat_qlora_alpaca_e3.py. The builders come from
# train/cpu_patches.py: mmengine imports them lazily, and each applies the patches listed
# there before building (no BOS before ChatML; on CPU: bitsandbytes' backend check and inference
# repacking, torch.cpu.is_bf16_supported). Imported through the `persona` package: `xtuner train`
# runs xtuner/tools/train.py as a script, whose folder would shadow a top-level `train`.
import torch
from mmengine.dataset import DefaultSampler
from mmengine.hooks import (
    CheckpointHook,
    DistSamplerSeedHook,
    IterTimerHook,
    LoggerHook,
    ParamSchedulerHook,
)
from mmengine.optim import ${mmengine_optim_wrapper}CosineAnnealingLR, LinearLR
from mmengine.visualization import LocalVisBackend, Visualizer
from peft import LoraConfig
from torch.optim import AdamW
from transformers import BitsAndBytesConfig

${autocast_import}${builder_import}from persona.train.warmup import Warmup
${lean_import}${data_imports}from xtuner.engine.hooks import DatasetInfoHook, EvaluateChatHook
from xtuner.engine.runner import TrainLoop
from xtuner.utils import PROMPT_TEMPLATE

#######################################################################
#                          PART 1  Settings                           #
#######################################################################
# Model
pretrained_model_name_or_path = $base_model
# The base's own Python code (auto_map in its config) runs only when declared: by its preset, or
# by the card's trust_remote_code for a local folder or hub id.
trust_remote_code = $trust_remote_code
method = $method  # qlora | lora | full
torch_dtype = $torch_dtype

# Data: conversation-format JSON built from the card (train/dataset.py)
data_path = $data_path
prompt_template = PROMPT_TEMPLATE.$prompt_template  # ChatML, as the base speaks it
max_length = $max_length
pack_to_max_length = $pack_to_max_length

# Scheduler & Optimizer
batch_size = $batch_size  # per device
accumulative_counts = $accumulative_counts
dataloader_num_workers = 0
max_epochs = $epochs
max_iters = $max_iters  # when set, replaces max_epochs
optim_type = AdamW
lr = $lr
betas = (0.9, 0.999)
weight_decay = 0
max_norm = 1  # grad clip
warmup_ratio = $warmup_ratio

# Save: resumable checkpoints (`xtuner train ... --resume CKPT`) and one at the end
save_steps = $save_steps
save_total_limit = $save_total_limit

# Generation check before and after training (only these, to stay cheap)
evaluation_inputs = $evaluation_inputs
evaluation_max_new_tokens = 40

#######################################################################
#                      PART 2  Model & Tokenizer                      #
#######################################################################
tokenizer = dict(
    type=$tokenizer_builder,
    pretrained_model_name_or_path=pretrained_model_name_or_path,
    trust_remote_code=trust_remote_code,
    padding_side="right",
)

model = dict(
    type=$model_builder
$start_adapter$lean_options    use_varlen_attn=False,
    use_activation_checkpointing=$activation_checkpointing,
    llm=dict(
        type=load_llm,
        pretrained_model_name_or_path=pretrained_model_name_or_path,
        trust_remote_code=trust_remote_code,
        torch_dtype=torch_dtype,
$quantization    ),
$lora)

#######################################################################
#                      PART 3  Dataset & Dataloader                   #
#######################################################################
${data_section}train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=train_dataset,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=$collate_fn, use_varlen_attn=False),
)

#######################################################################
#                    PART 4  Scheduler & Optimizer                    #
#######################################################################
optim_wrapper = dict(
    type=$optim_wrapper_type,
    optimizer=dict(type=optim_type, lr=lr, betas=betas, weight_decay=weight_decay),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,
$amp_options)

$schedule
#######################################################################
#                           PART 5  Runtime                           #
#######################################################################
custom_hooks = [$dataset_info_hook]
if evaluation_inputs:
    custom_hooks.append(
        dict(
            type=EvaluateChatHook,
            tokenizer=tokenizer,
            every_n_iters=None,  # before and after training only
            evaluation_inputs=evaluation_inputs,
            system="",
            prompt_template=prompt_template,
            max_new_tokens=evaluation_max_new_tokens,
            generation_kwargs=dict(do_sample=False),
        )
    )

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=$log_interval),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(
        type=CheckpointHook,
        by_epoch=False,
        interval=save_steps,
        max_keep_ckpts=save_total_limit,
        save_last=True,
        save_optimizer=True,  # resuming needs the optimizer and schedule too
        save_param_scheduler=True,
    ),
    sampler_seed=dict(type=DistSamplerSeedHook),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend=$dist_backend),
)

# scalars.json under the work dir: the loss curve the pipeline reports
visualizer = dict(type=Visualizer, vis_backends=[dict(type=LocalVisBackend)])
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=$seed, deterministic=False)
log_processor = dict(by_epoch=False)
''')

SFT_BUILDERS = "from persona.train.cpu_patches import build_model, load_dataset, load_llm, load_tokenizer\n"
PREFERENCE_BUILDERS = ("from persona.train.cpu_patches import load_dataset, load_llm\n"
                       "from persona.train.preference import build_orpo, load_chatml_tokenizer\n")
SFT_IMPORTS = ("from xtuner.dataset import process_hf_dataset\n"
               "from xtuner.dataset.collate_fns import default_collate_fn\n"
               "from xtuner.dataset.map_fns import template_map_fn_factory\n")
PREFERENCE_IMPORTS = ("from xtuner.dataset.collate_fns.preference_collate_fn import preference_collate_fn\n"
                      "from xtuner.dataset.preference_dataset import build_preference_dataset, intel_orca_dpo_map_fn\n")

SFT_DATA = '''\
train_dataset = dict(
    type=process_hf_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=dict(train=data_path)),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=None,  # the JSON is already in XTuner's conversation format
    template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),
    remove_unused_columns=True,
    shuffle_before_pack=True,
    pack_to_max_length=pack_to_max_length,
    use_varlen_attn=False,
    map_num_proc=1,  # a few hundred samples: worker processes cost more than they save
)

'''

PREFERENCE_DATA = '''\
# Preference pairs {system, question, chosen, rejected} (train/preference.py), rendered with the
# tokenizer's chat template (the training ChatML), one pair = two padded sequences; batch_size
# counts pairs
train_dataset = dict(
    type=build_preference_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=dict(train=data_path)),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=intel_orca_dpo_map_fn,  # {system, question, chosen, rejected} -> messages
    is_dpo=True,
    is_reward=False,
    reward_token_id=-1,
    num_proc=1,
    use_varlen_attn=False,
    shuffle_before_pack=True,
)

'''

QUANTIZATION = '''\
        quantization_config=dict(
            type=BitsAndBytesConfig,
            load_in_4bit=True,
            load_in_8bit=False,
            llm_int8_threshold=6.0,
            llm_int8_has_fp16_weight=False,
            bnb_4bit_compute_dtype=torch_dtype,
            bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4",
        ),
'''

LEAN_OPTIONS = """\
    # train/lean_model.py: SupervisedFinetune with a chunked cross-entropy (no full-vocabulary
    # float32 logits) and the frozen embedding and head kept in torch_dtype instead of float32
    # and, where the input embedding is not the head too, that table in host memory
    chunked_loss=True,
    frozen_dtype=torch_dtype,
    host_embedding=True,
"""

LORA = '''\
    lora=dict(
        type=LoraConfig,
        r=$lora_r,
        lora_alpha=$lora_alpha,
        lora_dropout=$lora_dropout,
$target_modules        bias="none",
        task_type="CAUSAL_LM",
    ),
'''

# all: no target_modules, so XTuner puts LoRA on every linear layer. attention: the attention
# projections by name, Llama and Qwen (q_proj, k_proj, v_proj, o_proj) and InternLM2 (wqkv, wo);
# peft reads a string as a regex.
TARGET_MODULES = {
    "all": "",
    "attention": '        target_modules=r".*\\.(q_proj|k_proj|v_proj|o_proj|wqkv|wo)$",\n',
}

FULL = '''\
    lora=None,  # full fine-tune: every weight trains
'''

EPOCH_SCHEDULE = '''\
# Warmup: LinearLR, but none where it would span under 2 steps (train/warmup.py): such a warmup
# would hold the rate at start_factor for good, as the cosine continues from where it stopped.
param_scheduler = [
    dict(
        type=Warmup,
        start_factor=1e-5,
        by_epoch=True,
        begin=0,
        end=warmup_ratio * max_epochs,
        convert_to_iter_based=True,
    ),
    dict(
        type=CosineAnnealingLR,
        eta_min=0.0,
        by_epoch=True,
        begin=warmup_ratio * max_epochs,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]

train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)
'''

ITER_SCHEDULE = '''\
# A warmup shorter than 2 steps would leave the rate near start_factor (the cosine continues
# from wherever the warmup stopped), so short runs go without one.
warmup_iters = int(warmup_ratio * max_iters)
param_scheduler = [
    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
if warmup_iters >= 2:
    param_scheduler.insert(
        0, dict(type=LinearLR, start_factor=1e-5, by_epoch=False, begin=0, end=warmup_iters)
    )

train_cfg = dict(type=TrainLoop, max_iters=max_iters)
'''


def render_config(persona_id: str, base_model: str | Path, data_path: str | Path,
                  options: TrainOptions, evaluation_inputs: list[str] = (),
                  trust_remote_code: bool = False, start_adapter: Path | None = None,
                  preference_beta: float | None = None) -> str:
    """The config file's text. `evaluation_inputs` are only used when options.eval_chat;
    `trust_remote_code` only when the base's preset or the card declares it; `start_adapter`:
    a LoRA adapter folder whose weights training starts from (train/start_adapter.py);
    `preference_beta`: train XTuner's ORPO on preference pairs (train/preference.py) with this
    weight on the odds-ratio term, instead of supervised fine-tuning on conversations."""
    if start_adapter is not None and options.method == "full":
        raise ValueError("a full fine-tune has no LoRA adapter to start from")
    cpu = options.device == "cpu"
    autocast_cpu = cpu and options.dtype == "bfloat16"
    optim_wrapper = ("CpuAutocastOptimWrapper" if autocast_cpu else
                     "OptimWrapper" if cpu else "AmpOptimWrapper")
    max_iters = options.max_steps * options.accumulative_counts if options.max_steps else None
    values = {
        "persona_id": persona_id,
        "base_model": _py(str(base_model)),
        "trust_remote_code": bool(trust_remote_code),
        "method": _py(options.method),
        # CPU: weights and 4-bit compute in float32 (bfloat16 dequantising was slower in a trial
        # by hand, not kept); bfloat16 products come from the optimizer wrapper's autocast
        "torch_dtype": "torch.float32" if cpu else f"torch.{options.dtype}",
        "data_path": _py(str(data_path)),
        "max_length": options.max_length,
        "pack_to_max_length": options.pack_to_max_length,
        "batch_size": options.batch_size,
        "accumulative_counts": options.accumulative_counts,
        "epochs": options.epochs,
        "max_iters": max_iters,
        "lr": options.lr,
        "warmup_ratio": options.warmup_ratio,
        "evaluation_inputs": _py(list(evaluation_inputs) if options.eval_chat else []),
        "activation_checkpointing": options.activation_checkpointing,
        "quantization": QUANTIZATION if options.method == "qlora" else "",
        "lora": FULL if options.method == "full" else Template(LORA).substitute(
            lora_r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
            target_modules=TARGET_MODULES[options.lora_targets]),
        "prompt_template": options.prompt_template,
        "save_steps": options.save_steps,
        "save_total_limit": options.save_total_limit,
        # CPU: float32, or bfloat16 autocast (train/cpu_autocast.py); CUDA: XTuner's stock AMP
        "optim_wrapper_type": optim_wrapper,
        "mmengine_optim_wrapper": "" if autocast_cpu else f"{optim_wrapper}, ",
        "autocast_import": ("from persona.train.cpu_autocast import CpuAutocastOptimWrapper\n"
                            if autocast_cpu else ""),
        "amp_options": "" if cpu else f'    loss_scale="dynamic",\n    dtype="{options.dtype}",\n',
        "lean_import": "from persona.train.lean_model import build_lean_model\n" if options.lean_model else "",
        **_objective(options, preference_beta),
        "lean_options": LEAN_OPTIONS if options.lean_model else "",
        "start_adapter": "" if start_adapter is None else (
            f"    start_adapter={_py(str(start_adapter))},  # the LoRA weights training starts from\n"),
        "schedule": ITER_SCHEDULE if max_iters else EPOCH_SCHEDULE,
        "log_interval": options.log_interval,
        "dist_backend": _py("gloo" if cpu else "nccl"),
        "seed": options.seed,
    }
    return CONFIG.substitute(values)


def _objective(options: TrainOptions, preference_beta: float | None) -> dict[str, str]:
    """The model, tokenizer and data parts of the config: supervised fine-tuning on
    conversations, or ORPO on preference pairs."""
    if preference_beta is None:
        return {"model_builder": ("build_lean_model," if options.lean_model else
                                  "build_model,  # xtuner.model.SupervisedFinetune, after the patches"),
                "builder_import": SFT_BUILDERS, "tokenizer_builder": "load_tokenizer",
                "data_imports": SFT_IMPORTS, "data_section": SFT_DATA,
                "collate_fn": "default_collate_fn",
                "dataset_info_hook": "\n    dict(type=DatasetInfoHook, tokenizer=tokenizer),\n"}
    if options.lean_model:
        raise ValueError("a preference pass has no lean model (its chunked loss is supervised only)")
    return {"model_builder": (f"build_orpo,  # xtuner.model.orpo.ORPO, after the patches\n"
                              f"    beta={preference_beta!r},  # weight of the odds-ratio term"),
            "builder_import": PREFERENCE_BUILDERS, "tokenizer_builder": "load_chatml_tokenizer",
            "data_imports": PREFERENCE_IMPORTS, "data_section": PREFERENCE_DATA,
            "collate_fn": "preference_collate_fn",
            "dataset_info_hook": ""}


def _py(value) -> str:
    """A Python literal that keeps non-ASCII text readable."""
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, (int, float)) else repr(value)
