"""The ``iotbuild`` console script: the same tasks as ``invoke``, usable from any folder."""

from __future__ import annotations

import os
import sys

from invoke import Collection, Program

from . import __version__


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    # A global --workspace DIR (before the task name) selects the workspace for every task.
    for i, a in enumerate(argv[1:], 1):
        if a == "--workspace" and i + 1 < len(argv):
            os.environ["IOTBUILD_WORKSPACE"] = os.path.abspath(argv[i + 1])
            del argv[i:i + 2]
            break
        if a.startswith("--workspace="):
            os.environ["IOTBUILD_WORKSPACE"] = os.path.abspath(a.split("=", 1)[1])
            del argv[i]
            break
        if not a.startswith("-"):
            break
    from .tasks import ns
    program = Program(namespace=Collection.from_module(sys.modules["iotbuild.tasks"]) if ns is None else ns,
                      version=__version__, name="iotbuild", binary="iotbuild")
    program.run(argv)


if __name__ == "__main__":
    main()
