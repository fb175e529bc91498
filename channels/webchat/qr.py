"""QR codes that open the chat about one product (optionally in one store)."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import segno
from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from channels.webchat import clean_context
from hub.api.deps import ServicesDep
from hub.models import Product, Store

MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def chat_url(public_url: str, sku: str, store: str | None) -> str:
    query = {"product": sku, **({"store": store} if store else {})}
    return f"{public_url.rstrip('/')}/chat?{urlencode(query)}"


def render(url: str, kind: str, scale: int = 8) -> bytes:
    code = segno.make(url, error="m")
    buffer = io.BytesIO()
    code.save(buffer, kind=kind, scale=scale, border=2)
    return buffer.getvalue()


@get("/qr/{filename:str}", include_in_schema=False)
async def product_qr(filename: FromPath[str], services: ServicesDep,
                     store: FromQuery[str | None] = None) -> Response[bytes]:
    sku, _, kind = filename.rpartition(".")
    if kind not in MEDIA_TYPES or not clean_context(sku):
        raise NotFoundException("use /qr/{sku}.svg or /qr/{sku}.png")
    async with services.sessions() as session:
        if await session.get(Product, sku) is None:
            raise NotFoundException(f"no product {sku}")
        if store and (not clean_context(store) or await session.get(Store, store) is None):
            raise NotFoundException(f"no store {store}")
    content = render(chat_url(services.settings.public_url, sku, store), kind)
    return Response(content, media_type=MEDIA_TYPES[kind],
                    headers={"Cache-Control": "public, max-age=86400"})
