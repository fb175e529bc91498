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
