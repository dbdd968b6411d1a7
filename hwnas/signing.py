"""Optional ed25519 signatures of predictor bundles: who made a bundle, not only that it is intact.

A bundle's checksums prove integrity: any edit is caught unless the editor also
recomputes them, which anyone can. A signature proves origin: only the holder
of the private key can make one that a trusted public key accepts.

The signature travels inside the bundle, in its zip comment after the manifest
checksum, so a signed bundle is still one file::

    hwnas-predictor manifest-sha256=<hex> ed25519=<signature hex> key=<public key hex>

It signs the first part (the manifest's sha256, and through the manifest the
sha256 of every member), so nothing in the bundle can change without breaking
it. Unsigned bundles keep working and say so; a bundle is required to be signed
by a trusted key only when trusted keys are given (``hwnas --trust-key KEY.pub
...`` or ``HWNAS_TRUST_KEYS=a.pub:b.pub``).

Keys are PEM files (``hwnas predictor keygen``); signing needs the
``cryptography`` package (``pip install 'hwnas[signing]'``).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import BundleError, InvalidConfig

__all__ = ["Signature", "sign_bundle", "read_signature", "check_signature", "generate_keypair", "trusted_keys",
           "TRUST_ENV"]

TRUST_ENV = "HWNAS_TRUST_KEYS"
_SIG = b" ed25519="
_KEY = b" key="


@dataclass(frozen=True)
class Signature:
    """What a bundle says about its origin."""

    signed: bool
    key_id: str | None = None  # first 16 hex digits of the sha256 of the raw public key
    trusted: bool | None = None  # None: no trusted keys were given to compare with

    def describe(self) -> str:
        if not self.signed:
            return "unsigned (integrity is checked; origin is not)"
        if self.trusted is None:
            return f"signed by ed25519 key {self.key_id} (valid; no --trust-key given to say whose it is)"
        return f"signed by trusted ed25519 key {self.key_id}"


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise InvalidConfig("bundle signatures need the cryptography package: pip install 'hwnas[signing]'") from None
    return serialization, ed25519


def key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def _raw_public(public_key) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate_keypair(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new ed25519 key pair as PEM files (the private one readable by its owner only); returns the key id."""
    from hwnas._files import atomic_write_bytes

    serialization, ed25519 = _crypto()
    for p in (private_path, public_path):
        if Path(p).exists():
            raise InvalidConfig(f"{p} already exists; keys are never overwritten")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write_bytes(private_path, private)
    os.chmod(private_path, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(public_path, public)
    return key_id(_raw_public(key.public_key()))


def _load_key(path: str | Path, *, private: bool):
    serialization, ed25519 = _crypto()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidConfig(f"key file {path} cannot be read: {exc.strerror}") from None
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise InvalidConfig(f"{path} is not a PEM {kind} key ({str(exc).splitlines()[0][:80] if str(exc) else ''})") from None
    expected = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, expected):
        raise InvalidConfig(f"{path} is not an ed25519 key; make one with hwnas predictor keygen")
    return key


def _split(comment: bytes) -> tuple[bytes, bytes | None, bytes | None]:
    """(the unsigned comment, signature, raw public key) of a bundle's zip comment."""
    head, sep, tail = comment.partition(_SIG)
    if not sep:
        return comment, None, None
    sig_hex, sep2, key_hex = tail.partition(_KEY)
    try:
        return head, bytes.fromhex(sig_hex.decode("ascii")), bytes.fromhex(key_hex.decode("ascii")) if sep2 else None
    except (ValueError, UnicodeDecodeError):
        return head, b"", None


def unsigned_comment(comment: bytes) -> bytes:
    """The part of a zip comment the manifest checksum is read from (a signature removed)."""
    return _split(comment)[0]


def sign_bundle(bundle: str | Path, private_key: str | Path) -> str:
    """Sign ``bundle`` in place (atomically; only its zip comment changes); returns the key id.

    The bundle is verified first: only an intact hwnas bundle is signed.
    """
    from hwnas.predictors.bundle import load_bundle

    bundle = Path(bundle)
    key = _load_key(private_key, private=True)
    load_bundle(bundle)  # intact and meaningful, or BundleError
    with zipfile.ZipFile(bundle) as zf:
        comment = zf.comment
    message = unsigned_comment(comment)
    signature = key.sign(message)
    raw = _raw_public(key.public_key())
    new_comment = message + _SIG + signature.hex().encode() + _KEY + raw.hex().encode()
    data = bundle.read_bytes()
    # the zip comment is the last bytes of the file; its length is the 2 bytes before it
    old_len = len(comment)
    end = len(data) - old_len
    if data[end - 2:end] != old_len.to_bytes(2, "little"):
        raise BundleError(f"{bundle}: unexpected zip layout; cannot sign it in place")
    from hwnas._files import atomic_write_bytes

    atomic_write_bytes(bundle, data[:end - 2] + len(new_comment).to_bytes(2, "little") + new_comment)
    return key_id(raw)


def trusted_keys(extra: tuple[str, ...] = ()) -> list[bytes]:
    """Raw public keys trusted now: ``extra`` paths and those named in ``$HWNAS_TRUST_KEYS`` (``:``-separated)."""
    paths = [p for p in os.environ.get(TRUST_ENV, "").split(os.pathsep) if p.strip()] + list(extra)
    return [_raw_public(_load_key(p, private=False)) for p in paths]


def read_signature(comment: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(message, signature, raw public key) of a signed comment, or ``None`` when unsigned."""
    message, sig, raw = _split(comment)
    if sig is None:
        return None
    return message, sig, raw or b""


def check_signature(path: str | Path, comment: bytes, *, trust: list[bytes] | None = None) -> Signature:
    """Verify a bundle's signature (if any) and, when keys are trusted, require one of them.

    Raises:
        BundleError: a signature that does not verify, or trusted keys given and the
            bundle unsigned or signed by another key.
    """
    trust = trusted_keys() if trust is None else trust
    found = read_signature(comment)
    if found is None:
        if trust:
            raise BundleError(f"{path} is unsigned, but trusted keys were given ({TRUST_ENV} or --trust-key); "
                              "ask its maker to sign it (hwnas predictor sign)")
        return Signature(False)
    message, sig, raw = found
    _, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(sig, message)
    except (InvalidSignature, ValueError):  # ValueError: a key that is not 32 bytes
        raise BundleError(f"{path}: its ed25519 signature does not verify (the bundle or its signature was altered)") from None
    kid = key_id(raw)
    if trust:
        if raw not in trust:
            raise BundleError(f"{path} is signed by key {kid}, which is not among the trusted keys")
        return Signature(True, kid, True)
    return Signature(True, kid, None)
