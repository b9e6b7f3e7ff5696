"""Signing identities: the test PKI, retail keys and PFX files, external signers (HSM).

Typical use (a stage)::

    signer = load_signer(config, oem_name="Contoso", now=datetime.now(timezone.utc))
    sign_cab(unsigned, signed, signer, signing_time)       # iotbuild.formats.authenticode
"""

from .config import SigningConfig, SigningMode
from .external import ExternalSigner
from .identity import Signer, check_validity, load_signer, local_backend
from .pki import TestPki, ensure_test_pki

__all__ = ["ExternalSigner", "Signer", "SigningConfig", "SigningMode", "TestPki", "check_validity",
           "ensure_test_pki", "load_signer", "local_backend"]
