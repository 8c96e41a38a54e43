"""The `persona` command: one subcommand per job, each a thin typed function in persona.commands."""

from __future__ import annotations

import sys

from persona import commands
from persona.base_models import BaseModelError
from persona.card import CardError
from persona.cli_args import build_parser
from persona.envs import EnvError
from persona.services import ServiceError

COMMANDS = {
    "setup": commands.setup,
    "data": commands.data,
    "train": commands.train,
    "merge": commands.merge,
    "serve": commands.serve,
    "ui": commands.ui,
    "eval": commands.eval,
    "up": commands.up,
}

# Errors whose message already tells the user what to fix: no traceback.
USER_ERRORS = (CardError, BaseModelError, EnvError, ServiceError, commands.CommandError)


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser("persona", COMMANDS).parse_args(argv))
    fn = args.pop("_fn")
    try:
        result = fn(**args)
    except USER_ERRORS as error:
        print(f"persona: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("persona: stopped", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0  # train returns its run folder


if __name__ == "__main__":
    sys.exit(main())
