"""Personal links (architecture.md, "Personal links").

token = base64url(HMAC-SHA256(secret, row id ‖ 128-bit salt)). The database keeps the
salt, which key signed it and SHA-256(token) for lookup, never the token, so a copy of
the database opens no link; the server recomputes a link whenever it renders an email,
so every reminder and resend carries the same one."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import uuid

from app.core.config import DEVELOPMENT_SECRET_KEY, Settings
from app.core.db import new_id

log = logging.getLogger("pulse.links")

DEVELOPMENT_SECRET = DEVELOPMENT_SECRET_KEY  # production refuses it (app/core/config.py)
SALT_BYTES = 16
TOKEN_LENGTH = 43  # 32 bytes, base64url without padding


def _secret_bytes(secret: str) -> bytes:
    return secret.encode()


def signing_keys(settings: Settings) -> dict[str, bytes]:
    """Key id → key: the current key first, then older ones still valid for open waves."""
    current = settings.secret_key.get_secret_value() if settings.secret_key else DEVELOPMENT_SECRET
    keys = [current, *[k.get_secret_value() for k in settings.old_secret_keys]]
    return {key_id(k): _secret_bytes(k) for k in keys}


def key_id(secret: str) -> str:
    return hashlib.sha256(b"pulse-key-id:" + secret.encode()).hexdigest()[:12]


def current_key(settings: Settings) -> tuple[str, bytes]:
    return next(iter(signing_keys(settings).items()))


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


@functools.lru_cache(maxsize=8)
def _signer(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def make_token(key: bytes, row_id: uuid.UUID, salt: bytes) -> str:
    # Copying a keyed HMAC skips re-deriving the padded key for each of a wave's links.
    signer = _signer(key).copy()
    signer.update(row_id.bytes + salt)
    return base64.urlsafe_b64encode(signer.digest()).decode().rstrip("=")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link(key: bytes) -> tuple[uuid.UUID, bytes, str]:
    """A new row's id, salt and token hash: what a linked row (an invitation, a meeting
    participant) stores so its link can be recomputed and looked up, never the link."""
    row_id, salt = new_id(), new_salt()
    return row_id, salt, hash_token(make_token(key, row_id, salt))


def looks_like_token(token: str) -> bool:
    return len(token) == TOKEN_LENGTH and all(c.isalnum() or c in "-_" for c in token)


def recompute(settings: Settings, row_id: uuid.UUID, salt: bytes, signed_with: str) -> str:
    """The link token of a row, under the key that signed it; KeyError if that key was
    retired."""
    return make_token(signing_keys(settings)[signed_with], row_id, salt)
