"""The JSON API under /api: every route but login needs an agent."""

from __future__ import annotations

from litestar import Router
from litestar.middleware import DefineMiddleware

from hub.api.auth import login, me
from hub.api.catalog import list_products, list_stores
from hub.api.conversations import ConversationController
from hub.api.customers import CustomerController
from hub.api.export import export_voc
from hub.api.kb import KnowledgeController
from hub.api.metrics import get_metrics
from hub.auth import AgentAuthMiddleware


def api_router() -> Router:
    return Router(
        path="/api",
        route_handlers=[login, me, ConversationController, CustomerController,
                        KnowledgeController, get_metrics, export_voc, list_products,
                        list_stores],
        middleware=[DefineMiddleware(AgentAuthMiddleware)],
    )
