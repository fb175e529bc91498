"""Attachments on disk under unguessable keys; images are checked by their bytes."""

from __future__ import annotations

import mimetypes
import re
import secrets
import unicodedata
from pathlib import Path
from urllib.parse import quote

from channels.base import Attachment

IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
                    "image/webp": "webp"}
_UNSAFE = re.compile(r"[^\w.\-]+")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_NOT_PLAIN_ASCII = re.compile(r"[^A-Za-z0-9._-]+")


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


def _ascii_fallback(name: str) -> str:
    """``name`` in plain ASCII letters, digits, ``.``, ``-`` and ``_`` (accents dropped,
    anything else one ``_``), keeping its extension; ``file`` when no stem is left."""
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = extension, ""
    plain_extension = _plain_ascii(extension)
    plain = _plain_ascii(stem) or "file"
    return f"{plain}.{plain_extension}" if plain_extension else plain


def _plain_ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_PLAIN_ASCII.sub("_", folded).strip("._")


def served_type(name: str) -> str:
    """The Content-Type a stored file is served with: its own for the images the hub checks
    by their bytes and for sound and video (shown in the inbox, fetched by LINE), which a
    browser never runs; anything else as bytes, so an uploaded page or SVG never runs on
    the hub's origin whatever its name says."""
    guessed, _ = mimetypes.guess_type(name)
    if guessed and (guessed in IMAGE_SIGNATURES or guessed.startswith(("audio/", "video/"))):
        return guessed
    return "application/octet-stream"


def download_disposition(name: str) -> str:
    """The ``Content-Disposition`` of a download named ``name`` (RFC 6266): a quoted ASCII
    fallback every browser reads, and the exact name as ``filename*`` (RFC 5987) when it
    differs. Both are spelled in header-safe characters only, whatever ``name`` holds."""
    printable = "".join(c for c in name if not unicodedata.category(c).startswith("C"))
    fallback = _ascii_fallback(printable)
    header = f'attachment; filename="{fallback}"'
    if printable and printable != fallback:
        header += f"; filename*=UTF-8''{quote(printable, safe='')}"
    return header


def named_for_its_bytes(name: str, data: bytes, content_type: str) -> tuple[str, str]:
    """The name and type a file is kept under, as its bytes say: an image is named for
    the kind it is (a PNG that also holds a page, sent as ``poly.html``, is kept as
    ``poly.png``, so a download is never a page); a file that claims to be an image, by
    its type or its name, and is not one, is kept as bytes (``notreally.png.bin``)."""
    actual = sniff_image(data)
    if actual is not None:
        stem = name.rpartition(".")[0] if "." in name else name
        return f"{stem or 'image'}.{IMAGE_EXTENSIONS[actual]}", actual
    claimed = {content_type, mimetypes.guess_type(name)[0]}
    if claimed & IMAGE_SIGNATURES.keys():  # what the hub would serve and show as a picture
        return f"{name}.bin", "application/octet-stream"
    return name, content_type


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
        filename, content_type = named_for_its_bytes(safe_name(name), data, content_type)
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
