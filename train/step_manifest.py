"""The manifest step, written last: what the run is (card, base, options, dataset), how it went
(timings, loss curve) and what it left (the artifact's files, the chat template's tokens)."""

from __future__ import annotations

import time
from pathlib import Path

from persona.card import PersonaCard
from persona.run_folder import RunFolder
from persona.train.progress import Stopwatch
from persona.train.step_train import Trained
from persona.train.xtuner_log import loss_curve


def plot_loss(run: RunFolder, card: PersonaCard, curve: list[dict]) -> Path | None:
    if not curve:
        return None
    from persona.plots import line_chart

    return line_chart(run.loss_curve, {"training loss": [(p["step"], p["loss"]) for p in curve]},
                      title=f"{card.id}: training loss", xlabel="optimizer step", ylabel="loss")


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in
            ("xtuner", "transformers", "torch", "bitsandbytes", "mmengine", "peft")}


def artifact(run: RunFolder, method: str, chart: Path | None) -> dict:
    return {"merged": run.relative(run.merged),
            "adapter": None if method == "full" else run.relative(run.adapter),
            "config": run.relative(run.config), "dataset": run.relative(run.train_data),
            "dataset_stats": run.relative(run.stats), "loss_curve": chart.name if chart else None}


def write_manifest(run: RunFolder, card: PersonaCard, card_path: Path, base: str,
                   trained: Trained, chat: dict, answers: list[dict], clock: Stopwatch,
                   omp_wait_policy: str) -> None:
    method = trained.options.get("method", "qlora")
    curve = loss_curve(run.train_log)
    chart = plot_loss(run, card, curve)
    seconds = [point["s_per_step"] for point in curve]
    run.write_manifest({
        "card": card.model_dump(),
        "card_path": str(card_path.resolve()),
        "base_model": base,
        "method": method,
        "hyperparameters": trained.options,
        "dataset": trained.stats,
        "timings_s": {**clock.laps, "total": clock.total()},
        "loss_curve": curve,
        "final_loss": curve[-1]["loss"] if curve else None,
        "mean_s_per_step": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "omp_wait_policy": omp_wait_policy,
        "checkpoint": str(trained.checkpoint),
        "resumed_from": trained.resumed_from,
        "artifact": artifact(run, method, chart),
        "chat": chat,
        "probe": answers,
        "versions": versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
