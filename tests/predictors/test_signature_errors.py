"""A bundle signature that cannot verify, whatever is wrong with it, is one BundleError (never a traceback)."""

from __future__ import annotations

import pytest

from hwnas.errors import BundleError
from hwnas.signing import _KEY, _SIG, check_signature

MESSAGE = b"manifest sha256 0123"


@pytest.fixture(scope="module")
def signed():
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    key = ed25519.Ed25519PrivateKey.generate()
    return key.sign(MESSAGE), key.public_key().public_bytes_raw()


def _comment(message: bytes, sig: bytes, raw_key: bytes) -> bytes:
    return message + _SIG + sig.hex().encode() + _KEY + raw_key.hex().encode()


def test_an_intact_signature_verifies(signed):
    sig, raw = signed
    assert check_signature("b.hwnas", _comment(MESSAGE, sig, raw), trust=[]).signed


@pytest.mark.parametrize("damage", [
    lambda sig, raw: _comment(MESSAGE + b"!", sig, raw),  # altered message: InvalidSignature
    lambda sig, raw: _comment(MESSAGE, sig[:10], raw),  # truncated signature: InvalidSignature
    lambda sig, raw: _comment(MESSAGE, sig, raw[:31]),  # a key of 31 bytes: ValueError
    lambda sig, raw: MESSAGE + _SIG + sig.hex().encode(),  # no key at all: ValueError (an empty key)
], ids=["altered-message", "truncated-signature", "short-key", "no-key"])
def test_a_signature_that_cannot_verify_is_one_bundle_error(signed, damage):
    with pytest.raises(BundleError, match="signature does not verify"):
        check_signature("b.hwnas", damage(*signed), trust=[])
