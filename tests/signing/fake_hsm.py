#!/usr/bin/env python3
"""A stand-in for an HSM wrapper script, speaking iotbuild's external signer protocol (signing/external.py).

Usage: fake_hsm.py [--prehashed | --garbage | --fail] [KEY]
KEY (a PEM private key) defaults to $FAKE_HSM_KEY. Reads the bytes to sign on stdin and writes the raw
signature to stdout. --prehashed signs $IOTBUILD_SIGN_DIGEST instead of hashing stdin (as a PKCS#11 token
would); --garbage answers with random bytes; --fail exits 1 with a message on stderr.
"""

import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils


def main(argv: list[str]) -> int:
    mode = argv[0] if argv and argv[0].startswith("--") else ""
    rest = argv[1:] if mode else argv
    data = sys.stdin.buffer.read()
    if mode == "--fail":
        print("fake HSM: token not present", file=sys.stderr)
        return 1
    if mode == "--garbage":
        sys.stdout.buffer.write(os.urandom(256))
        return 0
    key_path = rest[0] if rest else os.environ["FAKE_HSM_KEY"]
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if mode == "--prehashed":
        assert os.environ["IOTBUILD_SIGN_DIGEST_ALG"] == "sha256"
        digest, alg = bytes.fromhex(os.environ["IOTBUILD_SIGN_DIGEST"]), utils.Prehashed(hashes.SHA256())
    else:
        digest, alg = data, hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(digest, ec.ECDSA(alg))
    else:
        signature = key.sign(digest, padding.PKCS1v15(), alg)
    sys.stdout.buffer.write(signature)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
