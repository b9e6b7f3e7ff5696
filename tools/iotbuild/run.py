"""Every external program runs through :func:`run`: argument lists, a fixed locale, no stdin, a timeout."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Union

from .errors import ToolError

log = logging.getLogger(__name__)

StrPath = Union[str, os.PathLike[str]]

INSTALL_HINTS = {
    "qemu-img": "apt-get install --no-install-recommends qemu-utils (or run scripts/setup.sh)",
    "osslsigncode": "run scripts/setup.sh (installs osslsigncode >= 2.8 from bookworm-backports)",
    "cabextract": "apt-get install --no-install-recommends cabextract",
    "gcab": "apt-get install --no-install-recommends gcab",
    "openssl": "apt-get install --no-install-recommends openssl",
    "wimlib-imagex": "apt-get install --no-install-recommends wimtools (or run scripts/setup.sh)",
    **{tool: "apt-get install --no-install-recommends dosfstools (or run scripts/setup.sh)"
       for tool in ("mkfs.fat", "fsck.fat")},
    **{tool: "apt-get install --no-install-recommends mtools (or run scripts/setup.sh)"
       for tool in ("mcopy", "mmd", "mdir", "mtype", "mattrib")},
    **{tool: "apt-get install --no-install-recommends ntfs-3g (or run scripts/setup.sh)"
       for tool in ("mkntfs", "ntfslabel", "ntfsfix", "ntfscat", "ntfsls", "ntfsinfo")},
}


def run(argv: Sequence[StrPath], *, timeout: float, cwd: StrPath | None = None, input: bytes | None = None,
        check: bool = True, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    args = [os.fspath(a) for a in argv]
    log.debug("+ %s", shlex.join(args))
    full_env = {**os.environ, "LC_ALL": "C.UTF-8", **(env or {})}
    try:
        return subprocess.run(args, cwd=cwd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, check=check, timeout=timeout, env=full_env)
    except FileNotFoundError:
        raise ToolError(f"{args[0]} not found", hint=INSTALL_HINTS.get(args[0], f"install {args[0]}")) from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{shlex.join(args)}: no result after {timeout:g} s") from None
    except subprocess.CalledProcessError as e:
        err = (e.stderr or b"")[-4000:].decode("utf-8", "replace")
        out = (e.stdout or b"")[-2000:].decode("utf-8", "replace")
        raise ToolError(f"{shlex.join(args)}: exit {e.returncode}", stderr=err or out) from None
