"""The product and store catalog (what QR codes point at)."""

from __future__ import annotations

from typing import Any

from litestar import get
from sqlalchemy import select

from hub.api.deps import ServicesDep
from hub.models import Product, Store


@get("/products", tags=["catalog"])
async def list_products(services: ServicesDep) -> dict[str, Any]:
    async with services.sessions() as session:
        products = (await session.execute(select(Product).order_by(Product.sku))).scalars()
        return {"items": [p.model_dump() for p in products]}


@get("/stores", tags=["catalog"])
async def list_stores(services: ServicesDep) -> dict[str, Any]:
    async with services.sessions() as session:
        stores = (await session.execute(select(Store).order_by(Store.id))).scalars()
        return {"items": [s.model_dump() for s in stores]}
