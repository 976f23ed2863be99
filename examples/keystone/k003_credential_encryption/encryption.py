"""A small, deterministic, dependency-free stand-in for Keystone's Fernet key repository.

Keystone encrypts each credential's blob with the primary key of its Fernet key repository and
stores the key's hash beside it. This example keeps the shape (a keyed, reversible encryption and a
64-character key hash) with the standard library only: a keystream from HMAC-SHA256 of the key and
the credential's id, XORed with the blob, base64-encoded. It is NOT real encryption (no nonce, no
authentication); it stands in so the example runs anywhere and gives the same output every time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

KEY = b"keystone-example-primary-key-0001"  # Keystone reads this from its key repository


def key_hash(key: bytes = KEY) -> str:
    """64 hex characters naming the key (Keystone: the SHA-256 of the Fernet key)."""
    return hashlib.sha256(key).hexdigest()


def _keystream(key: bytes, salt: str, length: int) -> bytes:
    out, counter = b"", 0
    while len(out) < length:
        out += hmac.new(key, f"{salt}:{counter}".encode(), hashlib.sha256).digest()
        counter += 1
    return out[:length]


def encrypt(blob: str, credential_id: str, key: bytes = KEY) -> str:
    data = blob.encode()
    stream = _keystream(key, credential_id, len(data))
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, stream))).decode()


def decrypt(encrypted: str, credential_id: str, key: bytes = KEY) -> str:
    data = base64.b64decode(encrypted)
    stream = _keystream(key, credential_id, len(data))
    return bytes(a ^ b for a, b in zip(data, stream)).decode()


def encrypt_rows(rows) -> list[tuple[str, str]]:
    """compute_column's callable: a batch of credential rows in, (encrypted_blob, key_hash) out."""
    digest = key_hash()
    return [(encrypt(row.blob, row.id), digest) for row in rows]
