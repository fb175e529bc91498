"""Passwords (argon2) and signed, expiring tokens (HMAC-SHA256) for sessions and visitors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class BadToken(Exception):
    """A token that is forged, malformed, expired or meant for something else."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs small JSON payloads; each purpose has its own derived key."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def _key(self, purpose: str) -> bytes:
        return hmac.new(self._secret, purpose.encode("utf-8"), hashlib.sha256).digest()

    def sign(self, purpose: str, payload: dict[str, Any], ttl_seconds: float) -> str:
        body = dict(payload, exp=int(time.time() + ttl_seconds))
        encoded = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._key(purpose), encoded.encode(), hashlib.sha256).digest()
        return f"{encoded}.{_b64(mac)}"

    def unsign(self, purpose: str, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 4096:
            raise BadToken("malformed token")
        encoded, mac = token.split(".")
        expected = hmac.new(self._key(purpose), encoded.encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(mac), expected):
                raise BadToken("bad signature")
            payload = json.loads(_unb64(encoded))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadToken("malformed token") from exc
        if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
            raise BadToken("expired token")
        return payload

    def digest(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._key(purpose), value.encode(), hashlib.sha256).digest())
