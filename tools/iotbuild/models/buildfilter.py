"""``buildFilter`` expressions of .wm.xml files, e.g. ``(not build.isWow) and (build.arch = arm)``.

A tiny recursive-descent evaluator: ``or`` < ``and`` < ``not`` < comparison/atom. Identifiers are
``build.arch`` (the pkggen ``/cpu:`` value: arm, x86, amd64, arm64), ``build.isWow`` and
``build.isFeaturePack``. Anything else is an error, not a silent false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\s*(\(|\)|!=|=|[A-Za-z_][A-Za-z0-9_.]*|'[^']*'|\"[^\"]*\")")


class FilterError(ValueError):
    pass


def evaluate(expr: str, context: Mapping[str, str | bool]) -> bool:
    tokens: list[str] = []
    pos = 0
    text = expr.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterError(f"unexpected text {text[pos:pos + 10]!r} in buildFilter")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        raise FilterError("empty buildFilter")
    ctx = {k.lower(): v for k, v in context.items()}
    i = 0

    def peek() -> str | None:
        return tokens[i] if i < len(tokens) else None

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise FilterError("buildFilter ends too early")
        i += 1
        return tokens[i - 1]

    def value_of(tok: str) -> str | bool:
        if tok[0] in "'\"":
            return tok[1:-1]
        low = tok.lower()
        if low.startswith("build."):
            if low not in ctx:
                raise FilterError(f"unknown identifier {tok!r} (known: {', '.join(sorted(ctx))})")
            return ctx[low]
        if low in ("true", "false"):
            return low == "true"
        return tok  # a bare word such as arm or amd64

    def atom() -> bool:
        tok = take()
        if tok == "(":
            v = disj()
            if take() != ")":
                raise FilterError("missing ')' in buildFilter")
            return v
        if tok.lower() == "not":
            return not atom()
        left = value_of(tok)
        if peek() in ("=", "!="):
            op = take()
            right = value_of(take())
            eq = str(left).lower() == str(right).lower()
            return eq if op == "=" else not eq
        if isinstance(left, bool):
            return left
        raise FilterError(f"{tok!r} is not a condition (compare it, e.g. build.arch = {tok})")

    def conj() -> bool:
        v = atom()
        while (p := peek()) is not None and p.lower() == "and":
            take()
            v = atom() and v
        return v

    def disj() -> bool:
        v = conj()
        while (p := peek()) is not None and p.lower() == "or":
            take()
            v = conj() or v
        return v

    result = disj()
    if i != len(tokens):
        raise FilterError(f"unexpected {tokens[i]!r} in buildFilter")
    return result
