"""Downloads under /files: the stored name survives the download, safely spelled, and the
file never runs on the hub's origin."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from hub.files import download_disposition
from tests.conftest import RunningHub

SECURITY_HEADERS = {"content-type": "application/octet-stream",
                    "x-content-type-options": "nosniff",
                    "content-security-policy": "default-src 'none'; sandbox"}


def saved_as(disposition: str) -> str:
    """The name a browser saves the download under: ``filename*`` when present (RFC 6266)."""
    params = dict(re.findall(r';\s*(filename\*?)=("[^"]*"|[^;]*)', disposition))
    if "filename*" in params:
        charset, _, encoded = params["filename*"].partition("''")
        assert charset.lower() == "utf-8"
        return unquote(encoded, errors="strict")
    return params["filename"].strip('"')


def fallback_of(disposition: str) -> str:
    match = re.match(r'attachment; filename="([^"\\]*)"(;|$)', disposition)
    assert match is not None, disposition
    return match.group(1)


async def test_a_download_keeps_its_stored_name(hub: RunningHub) -> None:
    for name, content in [("file.txt", b"plain"), ("かきくけこ見積書.txt", "見積".encode()),
                          ("café_menu.pdf", b"%PDF-1.4"), ("page.html", b"<script>1</script>"),
                          ("logo.svg", b"<svg onload='alert(1)'/>")]:
        stored = hub.services.files.save(name, content, "application/octet-stream")
        response = await hub.http.get(stored.url)
        assert response.status_code == 200 and response.content == content
        [disposition] = response.headers.get_list("content-disposition")
        assert saved_as(disposition) == stored.name == name
        assert disposition.isascii() and fallback_of(disposition).isascii()
        assert {key: response.headers[key] for key in SECURITY_HEADERS} == SECURITY_HEADERS
    plain = await hub.http.get(hub.services.files.save("file.txt", b"x", "text/plain").url)
    assert plain.headers["content-disposition"] == 'attachment; filename="file.txt"'
    japanese = hub.services.files.save("写真.png", b"\x89PNG\r\n\x1a\n", "image/png")
    photo = await hub.http.get(japanese.url)
    assert photo.headers["content-type"] == "image/png"  # shown in the inbox, fetched by LINE
    shown = photo.headers["content-disposition"]
    assert shown == ('attachment; filename="file.png"; '
                     f"filename*=UTF-8''{quote('写真.png', safe='')}")


async def test_a_hostile_name_cannot_inject_headers(hub: RunningHub) -> None:
    hostile = '請求書"; filename="run.exe\r\nSet-Cookie: session=stolen\\.html'
    disposition = download_disposition(hostile)
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    assert fallback_of(disposition) == "filename_run.exeSet-Cookie_session_stolen.html"
    assert saved_as(disposition) == hostile.replace("\r\n", "")
    assert disposition.count(";") == 2  # nothing the name holds opens another parameter

    stored = hub.services.files.save(hostile, b"data", "text/html")
    response = await hub.http.get(stored.url)
    assert "set-cookie" not in response.headers
    assert saved_as(response.headers["content-disposition"]) == stored.name
    raw_name = await hub.http.get(f"/files/{stored.id}/{quote(hostile, safe='')}")
    assert raw_name.status_code == 404 and "set-cookie" not in raw_name.headers


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PAGE = b"<html><script>alert(1)</script></html>"


def test_files_are_named_and_typed_for_what_their_bytes_are(tmp_path: object) -> None:
    from pathlib import Path

    from hub.files import FileStore, served_type

    store = FileStore(Path(str(tmp_path)), max_bytes=1 << 20)
    cases = [
        # a picture that also holds a page, sent as .html: kept, and downloaded, as a PNG
        ("poly.html", PNG + PAGE, "text/html", "poly.png", "image/png"),
        ("photo.png", b"\xff\xd8\xff\xe0" + b"\x00" * 16, "image/png", "photo.jpg",
         "image/jpeg"),  # a JPEG misnamed
        # a page that claims to be a picture, by type or by name: bytes
        ("notreally.png", PAGE, "image/png", "notreally.png.bin", "application/octet-stream"),
        ("notreally.gif", PAGE, "application/octet-stream", "notreally.gif.bin",
         "application/octet-stream"),
        ("quote.pdf", b"%PDF-1.4", "application/pdf", "quote.pdf", "application/pdf"),
        ("IMG_0001.heic", b"\x00\x00\x00\x18ftypheic", "image/heic", "IMG_0001.heic",
         "image/heic"),  # not shown by the hub, served as bytes anyway
    ]
    for name, data, claimed, kept, kind in cases:
        saved = store.save(name, data, claimed)
        assert (saved.name, saved.content_type) == (kept, kind), name
        assert served_type(saved.name) in {kind, "application/octet-stream"}
    upload = store.save_image("poly.html", PNG + PAGE)
    assert upload.name == "poly.png" and upload.url.endswith("/poly.png")
