"""Attachments on disk under unguessable keys; images are checked by their bytes."""

from __future__ import annotations

import re
import secrets
import unicodedata
from pathlib import Path

from channels.base import Attachment

IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_UNSAFE = re.compile(r"[^\w.\-]+")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class FileRejected(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def sniff_image(data: bytes) -> str | None:
    for content_type, signatures in IMAGE_SIGNATURES.items():
        if any(data.startswith(signature) for signature in signatures):
            if content_type == "image/webp" and data[8:12] != b"WEBP":
                continue
            return content_type
    return None


def safe_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", Path(name or "file").name)
    cleaned = _UNSAFE.sub("_", name).strip("._") or "file"
    return cleaned[-120:]


class FileStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def save_image(self, name: str, data: bytes) -> Attachment:
        """Store an image upload; refuses oversized and non-image bytes."""
        if len(data) > self.max_bytes:
            raise FileRejected("too_large", f"file is larger than {self.max_bytes} bytes")
        content_type = sniff_image(data)
        if content_type is None:
            raise FileRejected("unsupported_type", "only PNG, JPEG, GIF or WebP images")
        return self.save(name, data, content_type)

    def save(self, name: str, data: bytes, content_type: str) -> Attachment:
        key = secrets.token_urlsafe(24)
        filename = safe_name(name)
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(data)
        return Attachment(id=key, name=filename, content_type=content_type, size=len(data),
                          url=f"/files/{key}/{filename}")

    def path_for(self, key: str, name: str) -> Path | None:
        if not _KEY.match(key) or safe_name(name) != name:
            return None
        path = self.root / key / name
        return path if path.is_file() else None
