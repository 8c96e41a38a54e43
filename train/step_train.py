"""The train step: `xtuner train` on the run's config, resumed from the last checkpoint when
that checkpoint was trained on this very config and data, judged by the checkpoint it leaves
(XTuner exits 0 even when its training script failed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from persona.run_folder import RunFolder, checkpoint_step, read_json, write_json
from persona.services import tail
from persona.train.options import TrainOptions
from persona.train.progress import PipelineError, say
from persona.train.xtuner_log import TrainWatcher
from persona.train.xtuner_run import XTuner


@dataclass
class Trained:
    """What the later steps need from training: its checkpoint and how it was trained."""

    checkpoint: Path
    options: dict  # the resolved TrainOptions
    stats: dict | None  # the dataset's
    resumed_from: str | None = None


def inputs_digest(run: RunFolder) -> str:
    digest = hashlib.sha256()
    for path in (run.config, run.train_data):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def final_checkpoint(run: RunFolder, work: Path | None = None, log: Path | None = None) -> Path:
    work, log = work or run.work, log or run.train_log
    checkpoint = run.last_checkpoint(work)
    if checkpoint is None:
        raise PipelineError(f"XTuner wrote no checkpoint in {work}; its output ends with:\n"
                            f"{tail(log)}")
    return checkpoint


def xtuner_train(run: RunFolder, config: Path, work: Path, log: Path, xtuner: XTuner,
                 resume: Path | None = None) -> Path:
    """`xtuner train` to the end, judged by the checkpoint it leaves; that checkpoint."""
    args = ["train", str(config), "--work-dir", str(work)]
    if resume:
        args += ["--resume", str(resume)]
    watcher = TrainWatcher()
    xtuner(args, log, watcher)
    checkpoint = final_checkpoint(run, work, log)
    if watcher.crashed or (watcher.total and checkpoint_step(checkpoint) != watcher.total):
        raise PipelineError(f"xtuner train stopped at {checkpoint.name} of {watcher.total or '?'} "
                            f"steps; its output ends with:\n{tail(log)}")
    return checkpoint


def resumable(run: RunFolder) -> Path | None:
    """The checkpoint to resume from: one exists and was trained on this very config and data."""
    checkpoint = run.last_checkpoint()
    if checkpoint is None or not run.inputs.is_file():
        return None
    return checkpoint if read_json(run.inputs).get("sha256") == inputs_digest(run) else None


def _start_over(run: RunFolder) -> None:
    if run.last_checkpoint():
        say("the checkpoints in work/ were trained on another config or data: starting over")
    run.remove(run.work)
    run.work.mkdir(parents=True)
    write_json(run.inputs, {"sha256": inputs_digest(run)}, indent=None)


def announce(options: TrainOptions, log: Path) -> None:
    length = f"{options.max_steps} steps" if options.max_steps else f"{options.epochs} epoch(s)"
    lora = "" if options.method == "full" else f", LoRA r={options.lora_r} alpha={options.lora_alpha}"
    say(f"xtuner train: {options.method}, {length}, lr {options.lr}{lora}, max_length "
        f"{options.max_length}, template {options.prompt_template}, a checkpoint every "
        f"{options.save_steps} steps (log: {log})")


def train(run: RunFolder, options: TrainOptions, stats: dict, xtuner: XTuner) -> Trained:
    resume = resumable(run)
    if resume:
        say(f"resuming from {resume.name} (an earlier run of the same config and data stopped)")
    else:
        _start_over(run)
    announce(options, run.train_log)
    checkpoint = xtuner_train(run, run.config, run.work, run.train_log, xtuner, resume)
    return Trained(checkpoint, options.model_dump(), stats, resume.name if resume else None)


def earlier(run: RunFolder) -> Trained:
    """What --only-merge takes from an earlier training: its last checkpoint, the options it
    trained with (options.json, or the manifest of a run from before that file) and its stats."""
    if not run.config.exists():
        raise PipelineError(f"--only-merge: {run.config} is missing; train first")
    options = run.read_options()
    if not options:
        raise PipelineError(f"--only-merge: {run.root} records no training options (neither "
                            f"{run.options.name} nor a manifest); train it again")
    stats = run.read_manifest().get("dataset")
    if stats is None and run.stats.is_file():  # a merge stopped after the manifest was removed
        stats = read_json(run.stats)
    # The weights the stats describe: a finished --refine pass's, else the preference pass's
    # where the options ask for one, else the training's
    refined = ((stats or {}).get("corrections") or {}).get("refined")
    preferred = options.get("preference_beta") and not refined
    checkpoint = (final_checkpoint(run, run.refine_work, run.refine_log) if refined
                  else final_checkpoint(run, run.prefer_work, run.prefer_log) if preferred
                  else final_checkpoint(run))
    if preferred and run.prefer_record.is_file():
        stats = {**(stats or {}), "preference": read_json(run.prefer_record)}
    if not run.options.is_file():  # a run from before options.json: convert removes the manifest
        run.write_options(options)
    return Trained(checkpoint, options, stats)

