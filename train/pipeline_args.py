"""The pipeline's command line: its own flags, plus one per user-settable TrainOptions field
(the same flags `persona train` has, from the same declaration)."""

from __future__ import annotations

import argparse
from pathlib import Path

from persona.cli_args import add_model_arguments
from persona.train.dataset import IDENTITY_REPEATS
from persona.train.options import TrainOptions, user_options

# Replay samples per other sample; chosen with the recipes compared in docs/training.md (leakage).
DEFAULT_REPLAY_RATIO = 0.15


def build_parser() -> argparse.ArgumentParser:
    """Training options default to None: unset ones come from the preset, then TrainOptions."""
    parser = argparse.ArgumentParser(description="Train, convert and merge a persona with XTuner.")
    parser.add_argument("--card", type=Path, required=True, help="persona card YAML")
    parser.add_argument("--base-model", required=True, help="a Hugging Face model folder (or hub id)")
    parser.add_argument("--out", type=Path, required=True, help="the run folder")
    parser.add_argument("--force", action="store_true", help="retrain even a finished run")
    parser.add_argument("--only-merge", action="store_true",
                        help="convert and merge the run's last checkpoint again, without training")
    parser.add_argument("--no-probe", action="store_true", help="skip the greedy answers at the end")
    parser.add_argument("--dataset", type=Path,
                        help="conversation-format JSON to train on instead of the card's dataset")
    parser.add_argument("--corrections", type=Path,
                        help="conversation-format JSON mixed into the card's dataset (what "
                             "`persona feedback export` writes)")
    parser.add_argument("--refine", action="store_true",
                        help="train the finished run a short pass on --corrections, starting "
                             "from its adapter, instead of retraining it from the base")
    add_model_arguments(parser.add_argument_group("training options"), TrainOptions)
    parser.add_argument("--repeats", type=int, default=IDENTITY_REPEATS,
                        help="times each identity phrasing appears")
    parser.add_argument("--plain-repeats", type=int, default=1,
                        help="times each plain (non-identity) question appears")
    parser.add_argument("--replay-ratio", type=float, default=DEFAULT_REPLAY_RATIO,
                        help="general-skill replay samples (the base's own answers) per other "
                             "sample; 0 turns replay off")
    parser.add_argument("--only-data", action="store_true",
                        help="write data/ (with the base's replay answers) and stop")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when torch sees one, else cpu")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.refine:
        clashes = [flag for flag, given in (("--force", args.force), ("--dataset", args.dataset),
                                            ("--only-merge", args.only_merge),
                                            ("--only-data", args.only_data)) if given]
        if not args.corrections or clashes:
            parser.error("--refine trains a finished run on --corrections alone"
                         + (f"; drop {', '.join(clashes)}" if clashes else ": give --corrections FILE"))
    return args


def given_options(args: argparse.Namespace) -> dict:
    """The training options this command line sets (None for the ones it leaves to defaults)."""
    return {name: getattr(args, name) for name in user_options()}
