"""How tasks talk to people and to machines: one summary line, progress on a terminal, ``--json``."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from collections.abc import Iterator

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s: %(message)s")


def emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    err.print(text, markup=False)


@contextmanager
def progress(total: int, label: str, enabled: bool) -> Iterator:
    """A progress bar on a terminal; a no-op callable elsewhere (CI logs stay clean)."""
    if not enabled or not err.is_terminal or total <= 1:
        yield lambda text=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda text=None: bar.update(task, advance=1, description=text or label)
