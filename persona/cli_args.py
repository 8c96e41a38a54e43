"""Build argparse sub-parsers from typed functions, so each subcommand is a plain typed function.

A command may also take the flagged fields of a pydantic model (`takes_model_flags`): each field
marked `cli` in its json_schema_extra becomes a flag (`--field-name`, or `--<flag>`), its
description the help, and the command gets them as keyword arguments (None when not given).
The same fields turn a parser's flags back into an argument list (`model_argv`), so a command
can hand them on to a child process that parses them the same way."""

from __future__ import annotations

import argparse
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable


def _param_help(doc: str) -> dict[str, str]:
    """`name: text` lines under 'Args:' in a docstring; a line that names no parameter
    continues the one before."""
    helps: dict[str, str] = {}
    in_args, last = False, None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
        elif in_args and stripped:
            name, colon, text = stripped.partition(":")
            if colon and name.strip().isidentifier():
                last = name.strip()
                helps[last] = text.strip()
            elif last:
                helps[last] += " " + stripped
    return helps


def _scalar_type(annotation: Any) -> Any:
    """The concrete type inside `X | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options[0]
    return annotation


def takes_model_flags(model: type, title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a command (taking **kwargs) as also taking the flagged fields of `model`, listed in
    its --help under `title`."""
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.model_flags = (model, title)
        return fn
    return mark


def model_flags(model: type) -> list[tuple[str, str, Any, str]]:
    """(field, flag, type, help) for each field of a pydantic model marked `cli`."""
    found = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli"):
            flag = "--" + str(extra.get("flag", name)).replace("_", "-")
            found.append((name, flag, _scalar_type(field.annotation), field.description or ""))
    return found


def add_model_arguments(parser: Any, model: type) -> None:
    """The model's flags on a parser (or argument group); unset ones parse to None."""
    for name, flag, kind, text in model_flags(model):
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        else:
            parser.add_argument(flag, dest=name, type=kind, default=None, help=text)


def model_argv(model: type, values: dict[str, Any]) -> list[str]:
    """The flags that give `values` (field -> value, None = not given) to add_model_arguments."""
    argv = []
    for name, flag, _kind, _text in model_flags(model):
        value = values.get(name)
        if isinstance(value, bool):
            argv.append(flag if value else flag.replace("--", "--no-", 1))
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def add_command(subparsers: Any, name: str, fn: Callable[..., Any]) -> None:
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n")[0]
    parser = subparsers.add_parser(name, help=summary, description=summary)
    helps = _param_help(doc)
    hints = typing.get_type_hints(fn)
    for param in inspect.signature(fn).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            continue  # the model's flags, added below
        kind = _scalar_type(hints.get(param.name, str))
        flag = "--" + param.name.replace("_", "-")
        text = helps.get(param.name, "")
        if kind is bool:
            parser.add_argument(flag, dest=param.name, action=argparse.BooleanOptionalAction,
                                default=param.default, help=text)
            continue
        default = param.default
        if default is inspect.Parameter.empty:  # a required value is typed bare: `remove ID`
            parser.add_argument(param.name, type=Path if kind is Path else kind, help=text,
                                metavar=param.name.upper())
            continue
        shown = "" if default in (None, inspect.Parameter.empty) else f" (default: {default})"
        parser.add_argument(flag, dest=param.name, type=Path if kind is Path else kind,
                            default=default, help=text + shown)
    if hasattr(fn, "model_flags"):
        model, title = fn.model_flags
        add_model_arguments(parser.add_argument_group(title), model)
    parser.set_defaults(_fn=fn)


def build_parser(prog: str, commands: dict[str, Callable[..., Any]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for name, fn in commands.items():
        add_command(subparsers, name, fn)
    return parser
