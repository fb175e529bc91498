"""HTTP side of web chat: the /chat page, the /widget.js embed, and image upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, MultipartBody
from litestar.response import File, Template

from channels.base import Inbound
from channels.webchat import WebChat, clean_context
from hub.api.deps import ServicesDep
from hub.catalog import price_label
from hub.files import FileRejected
from hub.models import Product, Store
from hub.pages import pick_locale, remember_locale, secure_headers
from hub.security import BadToken
from hub.serialize import customer_item_json

STATIC = Path(__file__).parent / "static"


@get("/chat", include_in_schema=False)
async def chat_page(request: Request[Any, Any, Any], services: ServicesDep,
                    product: FromQuery[str | None] = None,
                    store: FromQuery[str | None] = None,
                    link: FromQuery[str | None] = None) -> Template:
    locale = pick_locale(request)
    product_row = store_row = None
    async with services.sessions() as session:
        if clean_context(product):
            product_row = await session.get(Product, product)
        if clean_context(store):
            store_row = await session.get(Store, store)
    settings = services.settings
    context = {"locale": locale, "product": product_row, "store": store_row,
               "price": price_label(product_row.price, product_row.currency)
               if product_row else "",
               "link": link if link and link.isdigit() and len(link) == 6 else None,
               "line_enabled": settings.line_enabled and bool(settings.line_basic_id),
               "phone_enabled": settings.twilio_enabled and bool(settings.twilio_phone_number)}
    response = Template(template_name="chat.html", context=context)
    return remember_locale(request, secure_headers(response, embeddable=True))  # type: ignore[return-value]


@get("/widget.js", include_in_schema=False)
async def widget_script() -> File:
    return File(STATIC / "widget.js", content_disposition_type="inline",
                media_type="text/javascript")  # Litestar appends "; charset=utf-8"


@post("/webchat/upload", request_max_body_size=11 * 1024 * 1024, status_code=201,
      tags=["webchat"])
async def upload_image(
    data: MultipartBody[dict[str, Any]],
    services: ServicesDep,
) -> Response[dict[str, Any]]:
    """A customer's image: stored, then ingested like any message of the chat."""
    channel: WebChat = services.adapters["web"]  # type: ignore[assignment]
    token, upload = data.get("visitor_token"), data.get("file")
    if not isinstance(token, str) or not isinstance(upload, UploadFile):
        raise FileRejected("bad_payload", "visitor_token and file are required")
    try:
        visitor_id = channel.visitor_of(token)
    except BadToken as exc:
        raise FileRejected("invalid_visitor_token", str(exc)) from exc
    content = await upload.read()
    attachment = services.files.save_image(upload.filename, content)
    text = data.get("text") if isinstance(data.get("text"), str) else ""
    result = await channel.receive(Inbound(
        channel="web", identity_kind="web", identity_value=visitor_id,
        text=text[: services.settings.max_text_chars], attachments=(attachment,)))
    return Response(customer_item_json(result.item), status_code=201)
