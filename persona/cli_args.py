"""Build argparse sub-parsers from typed functions, so each subcommand is a plain typed function."""

from __future__ import annotations

import argparse
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable


def _param_help(doc: str) -> dict[str, str]:
    """`name: text` lines under 'Args:' in a docstring."""
    helps: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
        elif in_args and ":" in stripped:
            name, text = stripped.split(":", 1)
            helps[name.strip()] = text.strip()
    return helps


def _scalar_type(annotation: Any) -> Any:
    """The concrete type inside `X | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options[0]
    return annotation


def add_command(subparsers: Any, name: str, fn: Callable[..., Any]) -> None:
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n")[0]
    parser = subparsers.add_parser(name, help=summary, description=summary)
    helps = _param_help(doc)
    hints = typing.get_type_hints(fn)
    for param in inspect.signature(fn).parameters.values():
        kind = _scalar_type(hints.get(param.name, str))
        flag = "--" + param.name.replace("_", "-")
        text = helps.get(param.name, "")
        if kind is bool:
            parser.add_argument(flag, dest=param.name, action=argparse.BooleanOptionalAction,
                                default=param.default, help=text)
            continue
        default = param.default
        shown = "" if default in (None, inspect.Parameter.empty) else f" (default: {default})"
        parser.add_argument(flag, dest=param.name, type=Path if kind is Path else kind,
                            default=None if default is inspect.Parameter.empty else default,
                            required=default is inspect.Parameter.empty, help=text + shown)
    parser.set_defaults(_fn=fn)


def build_parser(prog: str, commands: dict[str, Callable[..., Any]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for name, fn in commands.items():
        add_command(subparsers, name, fn)
    return parser
