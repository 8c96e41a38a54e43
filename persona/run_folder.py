"""The run folder: where one training run keeps everything, and the one place that knows its
layout. Training writes it, serving and the evals read it; none of them builds a path in it by
hand.

RUN/
  data/              train.json (what was trained on), heldout.json (what the evals ask),
                     replay.json (the base's usable answers), stats.json
  xtuner_config.py   the rendered XTuner config
  options.json       the resolved training options the run trains with (method, lr, lora_r, ...)
  work/              XTuner's work dir: iter_N.pth (every save_steps, 2 kept), last_checkpoint,
                     inputs.json (what the checkpoints were trained on); train/convert/merge logs
  adapter/           the LoRA adapter (pth_to_hf); absent for --method full
  merged.partial/    a merge in progress, renamed to merged/ once its template checks out
  merged/            base + adapter (safetensors), training chat template, eos = <|im_end|>
  loss_curve.png     the training loss by step
  probe.json         a few greedy answers of the merged model
  manifest.json      card, base, versions, hyperparameters, dataset stats, timings, loss; written last

A run is finished once manifest.json and merged/config.json are both there. Runs trained before
options.json existed keep their options only in the manifest's "hyperparameters", which is
read instead. JSON files are written whole or not at all (a temporary file, then a rename).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from persona.card import PersonaCard, parse_card
from persona.errors import PersonaError


class RunFolderError(PersonaError, ValueError):
    """A file the caller needs is not in the run folder; the message names it."""


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, content, indent: int | None = 1) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    text = json.dumps(content, ensure_ascii=False, indent=indent) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target (a rename never crosses file systems), created like any file (the
    # umask's permissions, which a container reading the run may need), under a unique name.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @classmethod
    def at(cls, path: str | Path) -> RunFolder:
        return cls(Path(path).expanduser().resolve())

    # -- the layout
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def train_data(self) -> Path:
        return self.data / "train.json"

    @property
    def heldout(self) -> Path:
        return self.data / "heldout.json"

    @property
    def replay(self) -> Path:
        return self.data / "replay.json"

    @property
    def stats(self) -> Path:
        return self.data / "stats.json"

    @property
    def config(self) -> Path:
        return self.root / "xtuner_config.py"

    @property
    def options(self) -> Path:
        return self.root / "options.json"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def inputs(self) -> Path:
        return self.work / "inputs.json"

    @property
    def train_log(self) -> Path:
        return self.work / "train.log"

    @property
    def convert_log(self) -> Path:
        return self.work / "convert.log"

    @property
    def merge_log(self) -> Path:
        return self.work / "merge.log"

    @property
    def datasets_cache(self) -> Path:
        return self.work / "datasets-cache"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def merged_partial(self) -> Path:
        return self.root / "merged.partial"

    @property
    def chat_template(self) -> Path:
        return self.merged / "chat_template.jinja"

    @property
    def loss_curve(self) -> Path:
        return self.root / "loss_curve.png"

    @property
    def probe(self) -> Path:
        return self.root / "probe.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def relative(self, path: Path) -> str:
        """A path inside the run as the manifest records it (relative, with '/')."""
        return path.relative_to(self.root).as_posix()

    # -- state
    def finished(self) -> bool:
        """The one test of a finished run: the manifest is written last, after the merge."""
        return self.manifest.is_file() and (self.merged / "config.json").is_file()

    def has_adapter(self) -> bool:
        return (self.adapter / "adapter_config.json").is_file()

    def last_checkpoint(self) -> Path | None:
        """XTuner's newest checkpoint: the one its pointer names, else the highest iter_N.pth."""
        pointer = self.work / "last_checkpoint"
        if pointer.is_file() and Path(pointer.read_text().strip()).exists():
            return Path(pointer.read_text().strip())
        found = sorted(self.work.glob("iter_*.pth"), key=checkpoint_step) if self.work.is_dir() else []
        return found[-1] if found else None

    # -- the files other parts read
    def read_manifest(self) -> dict:
        return read_json(self.manifest) if self.manifest.is_file() else {}

    def write_manifest(self, manifest: dict) -> None:
        write_json(self.manifest, manifest)

    def card(self) -> PersonaCard:
        """The card the run was trained from, as its manifest records it."""
        if not self.manifest.is_file():
            raise RunFolderError(f"{self.root} has no {self.manifest.name}: not a finished run")
        return parse_card(self.read_manifest()["card"], str(self.root))

    def read_options(self) -> dict:
        """The options of the run's latest training (a finished run's manifest keeps those the
        finished model was trained with); {} when neither file records them."""
        if self.options.is_file():
            return read_json(self.options)
        return dict(self.read_manifest().get("hyperparameters") or {})  # a run from before options.json

    def write_options(self, options: dict) -> None:
        write_json(self.options, options)

    def read_heldout(self) -> list[dict]:
        """The held-out identity questions written with the run's dataset (lang, kind, question)."""
        if not self.heldout.is_file():
            raise RunFolderError(f"{self.root} has no {self.relative(self.heldout)}; "
                                 "its dataset was never written")
        return read_json(self.heldout)


def checkpoint_step(path: Path) -> int:
    """The iteration of a checkpoint file (iter_40.pth -> 40)."""
    return int(re.findall(r"\d+", path.name)[-1])
