"""The one place where exceptions become messages and exit codes."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from invoke import Exit

from ..console import emit_json, setup_logging
from ..errors import IotbuildError
from ..models.workspace import Workspace, load_workspace


def open_workspace(path: str | None = None) -> Workspace:
    return load_workspace(Path(path) if path else None)


def handle_errors(func):
    """Turn expected failures into one message (or a JSON object) and a non-zero exit; bugs keep their traceback."""

    @functools.wraps(func)
    def wrapper(c, *args, **kwargs):
        setup_logging(bool(os.environ.get("IOTBUILD_DEBUG")))
        as_json = kwargs.get("json", False)
        try:
            return func(c, *args, **kwargs)
        except IotbuildError as e:
            if as_json:
                emit_json({"ok": False, "error": e.to_dict()})
                raise Exit(code=e.exit_code) from None
            raise Exit(f"error: {e}", code=e.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper


log = logging.getLogger("iotbuild")
