"""Collecting every problem of an input file, each at its line, so one run reports them all."""

from __future__ import annotations

import os

from lxml import etree

from ..errors import InputError, InputErrors


class Issues:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.issues: list[InputError] = []

    def err(self, what: str, at: etree._Element | int | None, hint: str = "") -> None:
        """Record a problem at an element's line (or at a line number, or nowhere)."""
        line = at if isinstance(at, int) or at is None else getattr(at, "sourceline", None)
        self.issues.append(InputError(what, path=self.path, line=line, hint=hint))

    def raise_if_any(self, *, by_line: bool = False) -> None:
        if self.issues:
            found = sorted(self.issues, key=lambda e: e.line or 0) if by_line else self.issues  # sort is stable
            raise InputErrors(found)
