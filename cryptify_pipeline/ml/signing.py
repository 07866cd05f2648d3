"""The key stored models are signed with: read from text, or kept in a file created once.

A key is at least 32 random bytes, written as hex or base64. Its value never appears in a repr,
a str or an error; ``key_id`` names it instead (an HMAC of a fixed label under the key, which
tells nothing about the key itself).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

MIN_KEY_BYTES = 32
KEY_FORM = (
    f"at least {MIN_KEY_BYTES} random bytes as hex ({2 * MIN_KEY_BYTES} or more hex digits) or "
    "base64, e.g. the output of: python -c 'import secrets; print(secrets.token_hex(32))'"
)
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_KEY_ID_LABEL = b"cryptify model signing key id"


class SigningKeyError(ValueError):
    """Text or a file that does not hold a usable signing key (its content is never shown)."""


class SigningKey:
    """A secret for HMAC-SHA256 whose value never shows in ``repr`` or ``str``."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes):
        if len(secret) < MIN_KEY_BYTES:
            raise SigningKeyError(f"a key of {len(secret)} bytes is too short; expected {KEY_FORM}")
        self._secret = bytes(secret)

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """The key written in ``text`` as hex or base64 (standard or URL-safe, padding optional)."""
        text = text.strip()
        if _HEX.match(text):
            return cls(bytes.fromhex(text))
        padded = text + "=" * (-len(text) % 4)
        altchars = b"-_" if "-" in text or "_" in text else None
        try:
            secret = base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            raise SigningKeyError(f"not hex or base64; expected {KEY_FORM}") from None
        return cls(secret)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(MIN_KEY_BYTES))

    @property
    def key_id(self) -> str:
        """A short name for this key in messages and records."""
        return hmac.new(self._secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def mac(self, *parts: bytes) -> str:
        """HMAC-SHA256 of ``parts``, each prefixed with its length so that no two different
        sequences of parts give the same message."""
        digest = hmac.new(self._secret, digestmod=hashlib.sha256)
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def hex(self) -> str:
        """The key's text form, for writing it to its file: nothing else should call this."""
        return self._secret.hex()

    def __repr__(self) -> str:
        return f"SigningKey(id={self.key_id})"

    __str__ = __repr__


def read_key_file(path: Path) -> SigningKey:
    """The key in ``path``; refuses a file others can read or one that holds no key."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise SigningKeyError(f"cannot read the model signing key file {path}: {error}") from None
    if mode & 0o077:
        raise SigningKeyError(
            f"the model signing key file {path} can be read by others (mode {mode:04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        return SigningKey.parse(text)
    except SigningKeyError as error:
        raise SigningKeyError(f"the model signing key file {path} holds no key: {error}") from None


def read_or_create_key_file(path: Path) -> SigningKey:
    """The key in ``path``, created first (a new random key, mode 0600) if there is none.

    The new key is written to a private temporary file and then linked into place, which fails
    if another process got there first: every process ends up reading the same one key.
    """
    if path.exists():
        return read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(SigningKey.generate().hex() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return read_key_file(path)
