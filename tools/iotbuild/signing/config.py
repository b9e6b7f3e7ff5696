"""How a build signs: a test PKI made on first use, or a retail identity (key file, PFX or external signer).

The kit's equivalent is ``SIGN_MODE``/``SIGN_OEM``/``SIGNTOOL_OEM_SIGN`` in the workspace environment
(reference cab-authenticode-registry.md §4.1). Secrets never live in this object: a PFX password is named by
the environment variable that holds it, and a hardware key stays behind ``command`` (``signing.external``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class SigningMode(StrEnum):
    TEST = "test"
    RETAIL = "retail"


@dataclass(frozen=True)
class SigningConfig:
    mode: SigningMode
    cert_dir: Path                        # the test PKI lives in cert_dir/test/ (created on first use)
    key: Path | None = None               # retail: PEM private key, or a .pfx/.p12 holding key + chain
    certificate: Path | None = None       # retail: PEM leaf certificate (may also contain the chain)
    chain: tuple[Path, ...] = ()          # retail: extra PEM/DER CA certificates
    pfx_password_env: str | None = None   # name of the env var holding the PFX (or PEM key) password
    command: str | None = None            # retail: external signer command line (HSM / remote service)
    trusted_roots: tuple[Path, ...] = ()  # retail: roots the chain must end in

    @property
    def test_dir(self) -> Path:
        return self.cert_dir / "test"
