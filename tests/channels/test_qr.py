"""Shelf QR codes decode to the chat about that product."""

from __future__ import annotations

import segno

from channels.webchat.qr import chat_url, render
from hub.models import Product, Store
from tests.conftest import RunningHub


async def _catalog(hub: RunningHub) -> None:
    async with hub.services.sessions() as session, session.begin():
        session.add_all([Product(sku="OMO-TEA-001", name="静岡煎茶", price=1280),
                         Store(id="shibuya", name="渋谷店")])


def test_chat_url_carries_product_and_store() -> None:
    assert chat_url("https://hub.example/", "OMO-TEA-001", "shibuya") == (
        "https://hub.example/chat?product=OMO-TEA-001&store=shibuya")
    assert chat_url("https://hub.example", "A-1", None) == "https://hub.example/chat?product=A-1"


def test_rendered_code_holds_the_url() -> None:
    url = chat_url("https://hub.example", "OMO-TEA-001", None)
    svg = render(url, "svg").decode()
    assert svg.startswith("<?xml") and "<svg" in svg
    assert render(url, "png").startswith(b"\x89PNG")
    assert segno.make(url, error="m").designator  # the same data fits a real symbol


async def test_qr_routes(hub: RunningHub) -> None:
    await _catalog(hub)
    svg = await hub.http.get("/qr/OMO-TEA-001.svg?store=shibuya")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    png = await hub.http.get("/qr/OMO-TEA-001.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    for missing in ("/qr/NOPE.svg", "/qr/OMO-TEA-001.gif", "/qr/OMO-TEA-001.svg?store=nowhere"):
        assert (await hub.http.get(missing)).status_code == 404


async def test_chat_page_renders_the_product_card(hub: RunningHub) -> None:
    await _catalog(hub)
    page = await hub.http.get("/chat?product=OMO-TEA-001&store=shibuya",
                              headers={"Accept-Language": "ja"})
    assert page.status_code == 200
    assert "静岡煎茶" in page.text and "1,280" in page.text and "渋谷店" in page.text
    assert "frame-ancestors *" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
