"""The installation's Ed25519 key pair: proofs an auditor checks without our secret.

The HMAC signatures on chain heads and manifests (:mod:`consentgate.chain`,
:mod:`consentgate.audit.proofs`) need the server's secret key to check. Export
manifests and the chain heads they list are *additionally* signed with an Ed25519
private key kept in the data directory (``data_dir/signing-key.pem``, PKCS#8, mode
0600; copy it to every node that shares a PostgreSQL log). ``consentgate serve`` makes
it on its first start (``consentgate public-key`` and the admin API's export too, when
it is missing); the read-only ``consentgate export`` never makes one: without it the
manifest is signed with the secret keys only.
Its public key, printed by ``consentgate public-key`` and shown in the console, is
all ``consentgate verify-export FILE --public-key KEY`` needs.

Public key text: ``ed25519:`` followed by the 32 raw key bytes in standard base64.
Signatures: the 64 raw signature bytes in standard base64.

Exceptions::

    PublicKeyError (ValueError)   a public key text or file that is not an Ed25519 key
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import ConsentGateError

__all__ = [
    "KEY_FILE",
    "PUBLIC_PREFIX",
    "PublicKeyError",
    "SigningKey",
    "existing_signing_key",
    "load_public_key",
    "load_signing_key",
    "public_key_text",
    "signing_key_for",
    "verify_signature",
]

KEY_FILE = "signing-key.pem"
PUBLIC_PREFIX = "ed25519:"


class PublicKeyError(ConsentGateError, ValueError):
    """A public key that cannot be read (names the value and the expected form)."""


class SigningKey:
    """An Ed25519 private key and its public half."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()

    @property
    def public_text(self) -> str:
        return public_key_text(self.public)

    def sign(self, message: str) -> str:
        return base64.b64encode(self._private.sign(message.encode("utf-8"))).decode("ascii")


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def load_signing_key(data_dir: Path) -> SigningKey:
    """``data_dir/signing-key.pem``, generated (mode 0600) on first use."""
    path = data_dir / KEY_FILE
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_signing_key(data_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return SigningKey(private)
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return SigningKey(loaded)


_LOADED: dict[Path, SigningKey] = {}


def signing_key_for(data_dir: Path) -> SigningKey:
    """:func:`load_signing_key`, read once per process and directory."""
    where = data_dir.resolve()
    key = _LOADED.get(where)
    if key is None:
        key = _LOADED[where] = load_signing_key(data_dir)
    return key


def existing_signing_key(data_dir: Path) -> SigningKey | None:
    """:func:`signing_key_for` when the key pair exists already, else None (for tools
    that must not create one as a side effect)."""
    if not (data_dir / KEY_FILE).is_file():
        return None
    return signing_key_for(data_dir)


def load_public_key(value: str) -> Ed25519PublicKey:
    """A public key from its text (``ed25519:BASE64``) or from a file holding that
    text or a PEM public key."""
    text = value.strip()
    if not text.startswith(PUBLIC_PREFIX) and Path(text).is_file():
        data = Path(text).read_bytes()
        if data.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----"):
            try:
                key = serialization.load_pem_public_key(data)
            except ValueError as exc:
                raise PublicKeyError(f"{text}: not a PEM public key ({exc})") from None
            if not isinstance(key, Ed25519PublicKey):
                raise PublicKeyError(f"{text}: the PEM key is not an Ed25519 key")
            return key
        text = data.decode("ascii", errors="replace").strip()
    if not text.startswith(PUBLIC_PREFIX):
        raise PublicKeyError(
            f"expected ed25519:<base64> (from `consentgate public-key`) or a file "
            f"holding it, got {value[:60]!r}"
        )
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise PublicKeyError(
            f"{value[:60]!r} is not a 32-byte Ed25519 public key in base64"
        ) from None


def verify_signature(key: Ed25519PublicKey, message: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message.encode("utf-8"))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
