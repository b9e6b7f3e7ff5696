"""One small tree of errors, each of which a person can act on.

``InputError`` is the user's fault (XML, arguments, workspace), ``FormatError`` a file's bytes,
``ToolError`` an external program, ``SigningError`` keys and certificates. Bugs stay plain
exceptions, so the command line prints a traceback only for those.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class IotbuildError(Exception):
    """Root of every expected failure; the CLI turns it into a message and exit code 1."""

    exit_code = 1

    def __init__(self, what: str, *, path: str | os.PathLike[str] | None = None, line: int | None = None,
                 hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.hint = hint

    def where(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.what}" if where else self.what
        return f"{text} (fix: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, object]:
        return {"type": type(self).__name__, "message": self.what, "file": self.path, "line": self.line,
                "hint": self.hint or None}


class InputError(IotbuildError):
    """An input file or argument is wrong; the message says which line and how to fix it."""


class InputErrors(InputError):
    """Several problems found in one pass over an input: reported together so one run shows them all."""

    def __init__(self, errors: Iterable[InputError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.what, path=first.path, line=first.line, hint=first.hint)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def to_dict(self) -> dict[str, object]:
        return {"type": "InputErrors", "errors": [e.to_dict() for e in self.errors]}


class FormatError(IotbuildError):
    """The bytes of a file are not what its format requires."""

    def __init__(self, what: str, *, offset: int | None = None, path: str | os.PathLike[str] | None = None,
                 hint: str = "") -> None:
        super().__init__(what, path=path, hint=hint)
        self.offset = offset

    def where(self) -> str:
        parts = [p for p in (self.path, None if self.offset is None else f"0x{self.offset:x}") if p]
        return ": ".join(parts)

    def with_path(self, path: str | os.PathLike[str]) -> FormatError:
        if self.path is None:
            self.path = os.fspath(path)
        return self


class ToolError(IotbuildError):
    """An external program is missing, failed or took too long."""

    exit_code = 3

    def __init__(self, what: str, *, stderr: str = "", hint: str = "") -> None:
        super().__init__(what, hint=hint)
        self.stderr = stderr

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.stderr.rstrip()}" if self.stderr.strip() else text


class SigningError(IotbuildError):
    """A key, certificate or signer cannot be used, or a signature does not verify."""

    exit_code = 4
