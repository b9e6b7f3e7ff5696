"""Optional positional arguments for invoke tasks (``invoke buildpkg`` = ``invoke buildpkg All``), and
``invoke <task> --help`` for tasks with a positional argument (invoke would take ``--help`` as its value).

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


_original_handle = ParseMachine.handle


def _handle(self, token: str) -> None:  # type: ignore[no-untyped-def]
    if (token in ("--help", "-h") and self.context is not None and self.initial is not None
            and token not in self.context.flags and self.context.missing_positional_args):
        self.initial.flags[token].value = self.context.name  # what invoke does for a per-task --help
        for a in self.context.missing_positional_args:
            a.value = FALLBACKS.get((self.context.name, a.name), "")
        return
    _original_handle(self, token)


if getattr(ParseMachine.complete_context, "__name__", "") != "_complete_context":
    ParseMachine.complete_context = _complete_context  # type: ignore[method-assign]
    ParseMachine.handle = _handle  # type: ignore[method-assign]
