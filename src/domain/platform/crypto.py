"""Encryption of secrets at rest (provider keys, webhook signing secrets).

Fernet (AES-128-CBC with HMAC-SHA256) under a key derived with HKDF from
``BRANDGRAPH_ENCRYPTION_KEY`` when set, else from ``BRANDGRAPH_SECRET_KEY``. Ciphertexts carry
their key's id (``v1:<kid>:<token>``) so a rotation can tell old from new.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.config import ConfigError, get_settings


def _material() -> bytes:
    settings = get_settings()
    raw = settings.encryption_key or settings.secret_key
    if not raw:
        raise ConfigError("BRANDGRAPH_SECRET_KEY (or BRANDGRAPH_ENCRYPTION_KEY) is needed to encrypt secrets")
    return raw.encode()


def _fernet() -> tuple[str, Fernet]:
    material = _material()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"brandgraph", info=b"secrets-at-rest").derive(material)
    kid = hashlib.sha256(key).hexdigest()[:8]
    return kid, Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str) -> str:
    kid, f = _fernet()
    return f"v1:{kid}:{f.encrypt(plaintext.encode()).decode()}"


def decrypt(ciphertext: str) -> str:
    try:
        version, kid, token = ciphertext.split(":", 2)
        current, f = _fernet()
        if version != "v1" or kid != current:
            raise ValueError("encrypted with another key")
        return f.decrypt(token.encode()).decode()
    except (ValueError, InvalidToken) as exc:
        raise ConfigError(f"cannot decrypt a stored secret: {exc}") from None
