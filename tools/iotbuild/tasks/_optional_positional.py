"""Optional positional arguments for invoke tasks (``invoke buildpkg`` = ``invoke buildpkg All``).

Invoke treats every positional argument as required, while the kit's commands take an optional one.
When a task context is completed without a value for a registered positional, the fallback is filled
in just before invoke's own "did not receive required positional arguments" check. The patch touches
only arguments registered here; tests/tasks/test_cli.py guards it against invoke changes.
"""

from __future__ import annotations

from invoke.parser.parser import ParseMachine

FALLBACKS: dict[tuple[str, str], str] = {}


def optional_positional(task_name: str, arg: str, fallback: str) -> None:
    FALLBACKS[(task_name, arg)] = fallback


_original = ParseMachine.complete_context


def _complete_context(self) -> None:  # type: ignore[no-untyped-def]
    ctx = self.context
    if ctx is not None:
        for a in ctx.positional_args:
            fallback = FALLBACKS.get((ctx.name, a.name))
            if fallback is not None and a.value is None:
                a.value = fallback
    _original(self)


if getattr(ParseMachine.complete_context, "__name__", "") != "_complete_context":
    ParseMachine.complete_context = _complete_context  # type: ignore[method-assign]
