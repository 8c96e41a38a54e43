"""The `persona` command: one subcommand per job, each a thin typed function in persona.commands."""

from __future__ import annotations

import sys

from persona import commands, commands_export, commands_feedback, commands_live
from persona.cli_args import build_parser
from persona.errors import PersonaError

COMMANDS = {
    "setup": commands.setup,
    "data": commands.data,
    "train": commands.train,
    "merge": commands.merge,
    "serve": commands.serve,
    "ui": commands.ui,
    "eval": commands.eval,
    "up": commands.up,
    "add": commands_live.add,
    "remove": commands_live.remove,
    "list": commands_live.list_served,
    "feedback": commands_feedback.feedback,
    "export": commands_export.export,
}


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser("persona", COMMANDS).parse_args(argv))
    fn = args.pop("_fn")
    try:
        result = fn(**args)
    except PersonaError as error:  # its message says what to fix: no traceback
        print(f"persona: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("persona: stopped", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0  # train, export return their paths


if __name__ == "__main__":
    sys.exit(main())
