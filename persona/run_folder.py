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
  refine/            `persona train --refine`: the last short pass from the finished adapter on
                     the user's corrections: data.json (what it trained on), xtuner_config.py,
                     work/ (its checkpoints and train.log); removed when a training replaces it
  prefer/            `--preference-beta`: the ORPO pass after training, from its adapter:
                     pairs.json, xtuner_config.py, work/ (its checkpoints and train.log),
                     pass.json (what the manifest records of it); removed when a training
                     replaces it
  merged.partial/    a merge in progress, renamed to merged/ once its template checks out
  merged/            base + adapter (safetensors), training chat template, eos = <|im_end|>
  loss_curve.png     the training loss by step
  probe.json         a few greedy answers of the merged model
  export/            `persona export`: the merged model as <id>-<quant>.gguf, what llama.cpp
                     answered with it (<id>-<quant>.check.json), an Ollama Modelfile for the
                     last one; removed before a retrain replaces merged/
  manifest.json      card, base, versions, hyperparameters, dataset stats, timings, loss; written last,
                     removed before convert replaces adapter/ or merged/
  .persona-run       the marker: persona made (or adopted) this folder; what, when, for which card
  .lock              held (flock) by the jobs using the run: train, merge or data alone, or
                     any number of serve and eval together; names their pids and commands

A run is finished once manifest.json and merged/config.json are both there; a manifest always
describes the weights beside it (a retrain removes it first, and writes it again when done). A
request (a card, training options) is served or reused by a finished run only when
`differences` finds none; `refusal` is the one message when it does. Runs trained before
options.json existed keep their options only in the manifest's "hyperparameters", which is
read instead. JSON files are written whole or not at all (a temporary file, then a rename).

Persona writes and deletes only in a folder it claimed (`claim`: a new or empty folder, or a run
from before the marker existed); every deletion goes through `remove`. A job holds `lock` for its
whole length: one that writes holds it alone, servers and evals together; a job the lock excludes
fails at once, naming the holders.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from persona import clock, locks
from persona.card import CardError, PersonaCard, parse_card
from persona.errors import PersonaError

# Options that do not change the trained model: never a reason to refuse a finished run.
BOOKKEEPING = {"save_steps", "save_total_limit", "log_interval", "eval_chat"}


class RunFolderError(PersonaError, ValueError):
    """The run folder cannot serve as asked (a file missing, a folder persona did not make, a
    run in use); the message names the folder and what to do."""


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
    def adapter_config(self) -> Path:
        return self.adapter / "adapter_config.json"

    @property
    def refine(self) -> Path:
        return self.root / "refine"

    @property
    def refine_data(self) -> Path:
        return self.refine / "data.json"

    @property
    def refine_config(self) -> Path:
        return self.refine / "xtuner_config.py"

    @property
    def refine_work(self) -> Path:
        return self.refine / "work"

    @property
    def refine_log(self) -> Path:
        return self.refine_work / "train.log"

    @property
    def prefer(self) -> Path:
        return self.root / "prefer"

    @property
    def prefer_data(self) -> Path:
        return self.prefer / "pairs.json"

    @property
    def prefer_config(self) -> Path:
        return self.prefer / "xtuner_config.py"

    @property
    def prefer_record(self) -> Path:
        return self.prefer / "pass.json"

    @property
    def prefer_work(self) -> Path:
        return self.prefer / "work"

    @property
    def prefer_log(self) -> Path:
        return self.prefer_work / "train.log"

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
    def exports(self) -> Path:
        return self.root / "export"

    @property
    def loss_curve(self) -> Path:
        return self.root / "loss_curve.png"

    @property
    def probe(self) -> Path:
        return self.root / "probe.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def marker(self) -> Path:
        return self.root / ".persona-run"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def relative(self, path: Path) -> str:
        """A path inside the run as the manifest records it (relative, with '/')."""
        return path.relative_to(self.root).as_posix()

    # -- state
    def finished(self) -> bool:
        """The one test of a finished run: the manifest is written last, after the merge."""
        return self.manifest.is_file() and (self.merged / "config.json").is_file()

    def has_adapter(self) -> bool:
        return self.adapter_config.is_file()

    def last_checkpoint(self, work: Path | None = None) -> Path | None:
        """XTuner's newest checkpoint in `work` (the training's work/, refine/work/ or
        prefer/work/): the one its pointer names, else the highest iter_N.pth; never a file
        outside that folder (resuming and converting unpickle it: only the run's own
        checkpoints)."""
        work = self.work if work is None else work
        pointer = work / "last_checkpoint"
        named = Path(pointer.read_text().strip()) if pointer.is_file() else None
        if named is not None and self._own_checkpoint(named, work):
            return named
        found = sorted(work.glob("iter_*.pth"), key=checkpoint_step) if work.is_dir() else []
        found = [path for path in found if self._own_checkpoint(path, work)]
        return found[-1] if found else None

    @staticmethod
    def _own_checkpoint(path: Path, work: Path) -> bool:
        """A file whose real path is in `work`: a pointer or link out of it is not the run's."""
        real = path.resolve()
        return real.is_file() and work.resolve() in real.parents

    # -- ownership: what persona may write, delete, and who is using the run now
    def claimed(self) -> bool:
        return self.marker.is_file()

    def claim(self, card_id: str) -> None:
        """Make the folder persona's before anything is written or deleted in it: a new or empty
        folder gets the marker, and so does a run from before the marker existed; any other
        folder that holds something is refused, untouched."""
        if self.claimed():
            return
        self.check_claimable()
        adopted = self._older_run()
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.marker, {"created_by": "persona", "card": card_id, "adopted": adopted,
                                 "created_at": clock.now()})

    def check_claimable(self) -> None:
        """Refuse, touching nothing, a folder that `claim` would refuse (the CLI asks before it
        starts the training environment)."""
        if self.claimed() or self._older_run():
            return
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise RunFolderError(
                f"{self.root} is not empty and is not a persona run folder (no "
                f"{self.marker.name}); nothing in it was changed: choose an empty or new "
                "--out folder")

    def _older_run(self) -> bool:
        """A run from before the marker existed: its manifest names a card, or (interrupted
        before its manifest) it holds the XTuner config persona wrote and the record of what its
        checkpoints were trained on."""
        try:
            manifest = read_json(self.manifest) if self.manifest.is_file() else None
            config = self.config.read_text(encoding="utf-8")[:64] if self.config.is_file() else ""
        except (OSError, ValueError):
            return False
        if isinstance(manifest, dict) and isinstance(manifest.get("card"), dict):
            return True
        return config.startswith("# XTuner config for persona") and self.inputs.is_file()

    def remove(self, path: Path) -> None:
        """Delete a file or folder of this run (nothing when it is not there): the one way
        persona deletes in a run, so only below the root of a folder it claimed."""
        if not self.claimed():
            raise RunFolderError(f"{self.root} is not a persona run folder (no "
                                 f"{self.marker.name}): refusing to delete {path}")
        target = Path(os.path.abspath(path))  # '..' folded before the check, not after
        target = target.parent.resolve() / target.name  # a link is removed, never followed
        if self.root.resolve() not in target.parents:
            raise RunFolderError(f"refusing to delete {path}: it is not inside the run folder "
                                 f"{self.root}")
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)

    @contextmanager
    def lock(self, job: str, shared: bool = False) -> Iterator[None]:
        """Hold the run for one job, for its whole length: exclusively for a job that writes in
        it (train, merge, data), shared for one that serves or evaluates it and must not have it
        replaced meanwhile (serve, eval: several may run together). A job the lock excludes
        fails at once, naming the holders (persona.locks)."""
        if not self.claimed():
            raise RunFolderError(f"{self.root} is not a persona run folder (no "
                                 f"{self.marker.name}): claim it before locking it")

        def refused(holders: str) -> RunFolderError:
            return RunFolderError(f"{self.root} is in use by {holders}: wait for it to finish, "
                                  "or stop it")

        with locks.hold(self.lock_file, job, refused, shared=shared):
            yield

    # -- the files other parts read
    def unreadable(self, path: Path, why: str) -> RunFolderError:
        """A run file that cannot be trusted, and the two ways out."""
        return RunFolderError(f"{path} cannot be read ({why}): retrain the run in place with "
                              "`persona train --force`, or train a new one with --out DIR")

    def _read_object(self, path: Path) -> dict:
        """A JSON object file of the run, or the unreadable error (never a bare JSON traceback)."""
        try:
            content = read_json(path)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both are
            raise self.unreadable(path, f"not valid JSON: {error}") from None
        except OSError as error:
            raise self.unreadable(path, error.strerror or str(error)) from None
        if not isinstance(content, dict):
            raise self.unreadable(path, f"a JSON {type(content).__name__}, not an object")
        return content

    def read_manifest(self) -> dict:
        return self._read_object(self.manifest) if self.manifest.is_file() else {}

    def write_manifest(self, manifest: dict) -> None:
        write_json(self.manifest, manifest)

    def card(self) -> PersonaCard:
        """The card the run was trained from, as its manifest records it."""
        if not self.manifest.is_file():
            raise RunFolderError(f"{self.root} has no {self.manifest.name}: not a finished run")
        recorded = self.read_manifest().get("card")
        if not isinstance(recorded, dict):
            raise self.unreadable(self.manifest, "it records no card")
        try:
            return parse_card(recorded, str(self.manifest))
        except CardError as error:
            raise self.unreadable(self.manifest, f"its card is invalid: {error}") from None

    def read_options(self) -> dict:
        """The options of the run's latest training (a finished run's manifest keeps those the
        finished model was trained with); {} when neither file records them."""
        if self.options.is_file():
            return self._read_object(self.options)
        return dict(self.read_manifest().get("hyperparameters") or {})  # a run from before options.json

    def write_options(self, options: dict) -> None:
        write_json(self.options, options)

    def read_heldout(self) -> list[dict]:
        """The held-out identity questions written with the run's dataset (lang, kind, question)."""
        if not self.heldout.is_file():
            raise RunFolderError(f"{self.root} has no {self.relative(self.heldout)}; "
                                 "its dataset was never written")
        return read_json(self.heldout)


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def samples_digest(samples: list) -> str:
    """What a list of training samples is, in a few characters (the manifest keeps it)."""
    text = json.dumps(samples, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(run: RunFolder, card: PersonaCard, given: dict | None = None,
                samples: list | None = None, replay_ratio: float | None = None,
                corrections: list | None = None) -> list[str]:
    """How a request differs from the finished run in `run`: changed card fields, training
    options the user gave that the run did not use, another dataset or replay ratio. Empty when
    it matches. Serving and the evals give the card only."""
    manifest = run.read_manifest()
    found = []
    old_card, new_card = _flat(run.card().model_dump()), _flat(card.model_dump())
    for key in sorted(set(old_card) | set(new_card)):
        if old_card.get(key) != new_card.get(key):
            found.append(f"card {key}: {old_card.get(key)!r} in the run, {new_card.get(key)!r} now")
    # The manifest's options: options.json may already belong to a retraining under way.
    used = manifest.get("hyperparameters") or {}
    for name, value in (given or {}).items():
        if value is not None and name in used and used[name] != value and name not in BOOKKEEPING:
            found.append(f"{name}: {used[name]!r} in the run, {value!r} requested")
    old_ratio = (manifest.get("dataset") or {}).get("replay_ratio")
    if samples is None and None not in (old_ratio, replay_ratio) and old_ratio != replay_ratio:
        found.append(f"replay_ratio: {old_ratio!r} in the run, {replay_ratio!r} requested")
    if samples is not None:
        if not run.train_data.is_file() or read_json(run.train_data) != samples:
            found.append("dataset: the run trained on other samples than --dataset holds")
    trained = ((manifest.get("dataset") or {}).get("corrections") or {}).get("digest")
    if corrections is not None and trained != samples_digest(corrections):
        found.append("corrections: the run trained " + ("with other corrections than "
                     "--corrections holds" if trained else "without corrections"))
    return found


def refusal(run: RunFolder, found: list[str]) -> str:
    """The one message for a request that a finished run does not match (every command)."""
    refinable = all(line.startswith("corrections:") for line in found)
    return (f"{run.root} holds a finished run trained differently:\n  " + "\n  ".join(found)
            + ("\nadd --refine for a short pass from the finished persona on the corrections, "
               "retrain it in place with --force" if refinable else
               "\nretrain it in place with `persona train --force`")
            + ", or pass --out DIR for a separate run")


def refined_already(run: RunFolder, card: PersonaCard, given: dict,
                    corrections: list) -> bool:
    """Whether `persona train --refine` has anything to do: the run must be a finished LoRA run
    of this card and options (RunFolderError otherwise); False when it has not trained on
    these corrections yet."""
    if not run.finished():
        raise RunFolderError(f"--refine starts from a finished run, and {run.root} holds none: "
                             "train the card first (`persona train --card CARD`)")
    found = differences(run, card, given)
    if found:
        raise RunFolderError(refusal(run, found))
    if not run.has_adapter():
        raise RunFolderError(f"--refine starts from the run's LoRA adapter, and {run.root} has "
                             "none (a full fine-tune): retrain it with --corrections --force")
    return not differences(run, card, corrections=corrections)


def check_request(run: RunFolder, card: PersonaCard, given: dict | None = None,
                  samples: list | None = None, replay_ratio: float | None = None,
                  corrections: list | None = None) -> None:
    """Refuse (RunFolderError) a request that the finished run in `run` does not match."""
    found = differences(run, card, given, samples, replay_ratio, corrections)
    if found:
        raise RunFolderError(refusal(run, found))


def checkpoint_step(path: Path) -> int:
    """The iteration of a checkpoint file (iter_40.pth -> 40)."""
    return int(re.findall(r"\d+", path.name)[-1])
