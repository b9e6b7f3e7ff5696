"""SHA-256 of a file, read in chunks by the standard library (hashlib.file_digest)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()
