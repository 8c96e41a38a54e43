"""A preference pass (train/step_prefer.py) on a copy of a finished run, with pairs and settings
of your choosing, then the pass's adapter converted and merged: how docs/training.md's fifth
round was measured without training each persona again.

    .venv/bin/python benchmarks/preference_pass.py --from RUN --out COPY --beta 0.25 \\
        [--lr-factor 0.25] [--pairs PAIRS.json] [--card cards/xiaocong.yaml] [--max-steps N]
    .venv/bin/persona eval --card cards/xiaocong.yaml --out COPY --report-dir DIR

--pairs: [{system, question, chosen, rejected}] (default: the card's, train/step_prefer.py).
The pass runs in the training environment (`persona setup` builds it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="a finished run")
    parser.add_argument("--out", type=Path, required=True, help="the copy to train (new)")
    parser.add_argument("--beta", type=float, required=True, help="ORPO's odds-ratio weight")
    parser.add_argument("--lr-factor", type=float, default=None,
                        help="of the run's learning rate (default: the step's)")
    parser.add_argument("--pairs", type=Path, default=None, help="pairs JSON (default: the card's)")
    parser.add_argument("--card", type=Path, default=REPO / "cards" / "xiaocong.yaml")
    parser.add_argument("--max-steps", type=int, default=None, help="a smoke run of the pass")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def inside(args: argparse.Namespace) -> None:
    """In the training env: the pass from the copy's last checkpoint, then --only-merge."""
    from persona.card import load_card
    from persona.run_folder import RunFolder, read_json
    from persona.train import step_prefer
    from persona.train.options import TrainOptions
    from persona.train.step_train import Trained
    from persona.train.xtuner_run import XTuner, child_env, xtuner_command

    run = RunFolder(args.out)
    manifest = run.read_manifest()
    options = TrainOptions(**{**manifest["hyperparameters"], "preference_beta": args.beta,
                              "max_steps": args.max_steps})
    run.write_options(options.model_dump())  # --only-merge then takes the pass's checkpoint
    trained = Trained(run.last_checkpoint(), options.model_dump(), manifest["dataset"])
    pairs = read_json(args.pairs) if args.pairs else None
    step_prefer.prefer(run, load_card(args.card), manifest["base_model"], options, trained,
                       XTuner(xtuner_command(), child_env(run)), pairs,
                       args.lr_factor or step_prefer.LR_FACTOR)
    subprocess.run([sys.executable, "-m", "persona.train.pipeline", "--card", str(args.card),
                    "--base-model", manifest["base_model"], "--out", str(run.root),
                    "--only-merge"], check=True)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.inside:
        return inside(args)
    from persona import envs

    if args.out.exists():
        sys.exit(f"{args.out} exists: the pass trains a new copy")
    shutil.copytree(args.source, args.out, ignore=shutil.ignore_patterns(".lock", "prefer",
                                                                         "refine", "export"))
    command = [str(envs.python("train")), __file__, "--inside", "--from", str(args.source),
               "--out", str(args.out.resolve()), "--beta", str(args.beta), "--card",
               str(args.card.resolve())]
    command += ["--lr-factor", str(args.lr_factor)] if args.lr_factor else []
    command += ["--pairs", str(args.pairs.resolve())] if args.pairs else []
    command += ["--max-steps", str(args.max_steps)] if args.max_steps else []
    subprocess.run(command, cwd=REPO, env=envs.command_env("train"), check=True)


if __name__ == "__main__":
    main()
