"""The one base of every error a user can act on: the CLI prints it, without a traceback, and
exits with its code. Components subclass it (keeping ValueError/RuntimeError where callers
catch those)."""

from __future__ import annotations


class PersonaError(Exception):
    """A message that says what went wrong, an optional hint that says what to do, an exit code."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message
