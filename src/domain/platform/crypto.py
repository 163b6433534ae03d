"""Encryption of secrets at rest (provider keys, AI credentials, webhook signing secrets).

Fernet (AES-128-CBC with HMAC-SHA256) under keys derived with HKDF from
``BRANDGRAPH_ENCRYPTION_KEY`` when set, else from ``BRANDGRAPH_SECRET_KEY``. Ciphertexts carry
their key's id (``v1:<kid>:<token>``) so a rotation can tell old from new.

Key rotation without downtime (``MultiFernet``): ``BRANDGRAPH_ENCRYPTION_KEY`` may hold several
keys separated by commas, newest first. The first encrypts; every one of them (and the key derived
from ``BRANDGRAPH_SECRET_KEY``, so that a first encryption key can be introduced) decrypts.
Deploy ``new,old`` everywhere, re-encrypt stored values with :func:`rotate` at leisure (a value is
readable under both during the change), then drop ``old``.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.config import ConfigError, get_settings


@lru_cache(maxsize=16)
def _derive(material: str) -> tuple[str, Fernet]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"brandgraph", info=b"secrets-at-rest").derive(
        material.encode())
    kid = hashlib.sha256(key).hexdigest()[:8]
    return kid, Fernet(base64.urlsafe_b64encode(key))


def _keys() -> list[tuple[str, Fernet]]:
    """Every key that may decrypt, the one that encrypts first."""
    settings = get_settings()
    materials = [k.strip() for k in (settings.encryption_key or "").split(",") if k.strip()]
    if settings.secret_key:
        materials.append(settings.secret_key)
    if not materials:
        raise ConfigError("BRANDGRAPH_SECRET_KEY (or BRANDGRAPH_ENCRYPTION_KEY) is needed to encrypt secrets")
    seen: dict[str, Fernet] = {}
    for m in materials:
        kid, f = _derive(m)
        seen.setdefault(kid, f)
    return list(seen.items())


def current_kid() -> str:
    return _keys()[0][0]


def encrypt(plaintext: str) -> str:
    kid, f = _keys()[0]
    return f"v1:{kid}:{f.encrypt(plaintext.encode()).decode()}"


def decrypt(ciphertext: str) -> str:
    try:
        version, kid, token = ciphertext.split(":", 2)
        if version != "v1":
            raise ValueError("unknown format")
        keys = _keys()
        by_kid = dict(keys)
        if kid in by_kid:
            return by_kid[kid].decrypt(token.encode()).decode()
        return MultiFernet([f for _, f in keys]).decrypt(token.encode()).decode()
    except (ValueError, InvalidToken) as exc:
        raise ConfigError(f"cannot decrypt a stored secret: {type(exc).__name__}") from None


def needs_rotation(ciphertext: str) -> bool:
    return not ciphertext.startswith(f"v1:{current_kid()}:")


def rotate(ciphertext: str) -> str:
    """The same secret encrypted under the current key (unchanged when it already is)."""
    if not needs_rotation(ciphertext):
        return ciphertext
    return encrypt(decrypt(ciphertext))
