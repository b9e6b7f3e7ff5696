"""External signer: the private key stays in an HSM or a remote signing service; iotbuild runs a command.

Protocol (what a site's wrapper script must do):

* iotbuild runs the configured ``command`` line, split with :func:`shlex.split` (no shell), through
  :func:`iotbuild.run.run` with a timeout (default 120 s).
* **stdin**: the exact bytes to be signed: the DER of the CMS signed attributes (a SET, tag 0x31), i.e. what a
  PKCS#1 v1.5 / SHA-256 signature covers (reference cab-authenticode-registry.md §2.3).
* **environment**: everything iotbuild itself has, plus ``IOTBUILD_SIGN_DIGEST_ALG=sha256`` and
  ``IOTBUILD_SIGN_DIGEST=<lower-case hex SHA-256 of stdin>``, for HSMs that sign a prehashed digest
  (e.g. ``pkcs11-tool --mechanism RSA-PKCS`` over a DigestInfo, or ``CKM_SHA256_RSA_PKCS`` over stdin).
* **stdout**: the raw signature bytes and nothing else: for RSA the PKCS#1 v1.5 signature (as many bytes as
  the modulus), for ECDSA the DER ``Ecdsa-Sig-Value``. Exit status 0. Diagnostics go to stderr, which iotbuild
  shows if the command fails.

The certificates come from the configuration (``certificate``/``chain``), not from the command. Before using a
signature, iotbuild checks it with the leaf certificate's public key, so a wrong key, a wrong padding mode or
stray output on stdout is reported here, not by Windows at install time.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from ..errors import SigningError
from ..formats.authenticode import subject_of, verify_raw_signature
from ..run import run

DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class ExternalSigner:
    """A callable ``data -> signature`` backed by ``command``; the leaf certificate checks each answer."""

    command: str
    leaf: asn1_x509.Certificate
    timeout: float = DEFAULT_TIMEOUT

    def argv(self) -> list[str]:
        try:
            argv = shlex.split(self.command)
        except ValueError as e:
            raise SigningError(f"external signer command {self.command!r} cannot be parsed: {e}") from None
        if not argv:
            raise SigningError("external signer command is empty",
                               hint="set the signing command, or use a key file")
        return argv

    def __call__(self, data: bytes) -> bytes:
        env = {"IOTBUILD_SIGN_DIGEST_ALG": "sha256", "IOTBUILD_SIGN_DIGEST": hashlib.sha256(data).hexdigest()}
        result = run(self.argv(), timeout=self.timeout, input=data, env=env)
        signature = result.stdout
        if not signature or not verify_raw_signature(self.leaf, data, signature):
            raise SigningError(
                f"external signer returned a signature that does not verify with {subject_of(self.leaf)!r} "
                f"({len(signature)} bytes on stdout)",
                hint="check that the command signs stdin with SHA-256 and the key of the configured "
                     "certificate, and writes only the raw signature to stdout")
        return signature
