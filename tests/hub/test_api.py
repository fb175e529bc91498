"""The JSON API through a real HTTP server: auth on every route, tickets, errors."""

from __future__ import annotations

import re

import httpx
import pytest

from channels.base import Inbound
from hub.auth import SESSION_COOKIE, LoginThrottle, csrf_token
from tests.conftest import RunningHub


def _api_routes(hub: RunningHub) -> list[tuple[str, str]]:
    from hub.app import create_litestar

    app = create_litestar(hub.services)
    routes = []
    for route in app.routes:
        if not route.path.startswith("/api"):
            continue
        for method in getattr(route, "http_handler_names", None) or route.methods:
            if method in {"OPTIONS", "HEAD"}:
                continue
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            routes.append((method, path))
    return routes


async def test_every_api_route_but_login_refuses_an_anonymous_call(hub: RunningHub) -> None:
    routes = _api_routes(hub)
    assert len(routes) >= 8
    for method, path in routes:
        response = await hub.http.request(method, path, json={})
        if path == "/api/auth/login":
            assert response.status_code != 401 or "password" in response.text
            continue
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "unauthorized"


async def test_forged_token_is_refused(hub: RunningHub) -> None:
    token = await hub.login()
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = await hub.api("GET", "/api/conversations", forged)
    assert response.status_code == 401


async def test_wrong_password_gets_a_json_401(hub: RunningHub) -> None:
    response = await hub.http.post("/api/auth/login",
                                   json={"email": "agent@example.com", "password": "nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_repeated_wrong_passwords_slow_the_guesser_down(hub: RunningHub) -> None:
    for _ in range(LoginThrottle.MAX_PER_EMAIL):
        wrong = await hub.http.post("/api/auth/login", json={
            "email": "agent@example.com", "password": "guess"})
        assert wrong.status_code == 401
    right = await hub.http.post("/api/auth/login", json={
        "email": "agent@example.com", "password": "agent-password"})
    assert right.status_code == 429 and right.json()["error"]["code"] == "rate_limited"
    assert 0 < int(right.headers["retry-after"]) <= LoginThrottle.WINDOW_SECONDS
    other = await hub.http.post("/api/auth/login", json={
        "email": "lead@example.com", "password": "lead-password"})
    assert other.status_code == 200  # another agent on the same network is not locked out


def test_the_login_throttle_forgets_failures_as_they_leave_the_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(LoginThrottle.MAX_PER_EMAIL):
        throttle.failed("Agent@Example.com ", "10.0.0.1")
        now[0] += 60
    assert throttle.retry_after("agent@example.com", "10.0.0.2") == \
        LoginThrottle.WINDOW_SECONDS - LoginThrottle.MAX_PER_EMAIL * 60
    now[0] = LoginThrottle.WINDOW_SECONDS + 1  # the first failure has left the window
    assert throttle.retry_after("agent@example.com", "10.0.0.2") == 0
    throttle.succeeded("agent@example.com")
    assert throttle.retry_after("agent@example.com", "10.0.0.1") == 0
    for n in range(LoginThrottle.MAX_PER_CLIENT):  # one client trying many addresses
        throttle.failed(f"user{n}@example.com", "10.0.0.9")
    assert throttle.retry_after("new@example.com", "10.0.0.9") > 0
    assert throttle.retry_after("new@example.com", "10.0.0.8") == 0


async def test_inbox_lists_newest_activity_first(hub: RunningHub) -> None:
    token = await hub.login()
    for visitor in ("a", "b", "c"):
        await hub.services.ingestor.ingest(Inbound(channel="web", identity_kind="web",
                                                   identity_value=visitor, text=f"hi {visitor}"))
    await hub.services.ingestor.ingest(Inbound(channel="web", identity_kind="web",
                                               identity_value="a", text="again"))
    body = (await hub.api("GET", "/api/conversations", token)).json()
    assert [c["last_message"]["text"] for c in body["items"]] == ["again", "hi c", "hi b"]
    assert body["items"][0]["unread_count"] == 2
    times = [c["last_activity_at"] for c in body["items"]]
    assert times == sorted(times, reverse=True)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t) for t in times)


async def test_an_anonymous_visitor_is_marked_so_the_inbox_can_name_them(
        hub: RunningHub) -> None:
    token = await hub.login()
    guest = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="visitor-00ab", text="hello"))
    named = await hub.services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value="U" + "1" * 32, text="hi",
        display_name="Guest Relations"))
    listed = {c["id"]: c["customer"] for c in
              (await hub.api("GET", "/api/conversations", token)).json()["items"]}
    assert listed[guest.conversation.id] == {"id": guest.customer.id,
                                             "display_name": "Guest 00AB", "guest_code": "00AB"}
    assert listed[named.conversation.id]["guest_code"] is None
    profile = (await hub.api("GET", f"/api/customers/{guest.customer.id}", token)).json()
    assert profile["guest_code"] == "00AB"


async def test_inbox_pages_with_a_cursor(hub: RunningHub) -> None:
    token = await hub.login()
    for n in range(5):
        await hub.services.ingestor.ingest(Inbound(channel="web", identity_kind="web",
                                                   identity_value=f"v{n}", text=str(n)))
    first = (await hub.api("GET", "/api/conversations?limit=2", token)).json()
    second = (await hub.api("GET", f"/api/conversations?limit=2&cursor={first['next_cursor']}",
                            token)).json()
    third = (await hub.api("GET", f"/api/conversations?limit=2&cursor={second['next_cursor']}",
                           token)).json()
    ids = [c["id"] for page in (first, second, third) for c in page["items"]]
    assert len(ids) == len(set(ids)) == 5
    assert third["next_cursor"] is None
    for bad in ("0", "-1", "abc"):
        refused = await hub.api("GET", f"/api/conversations?limit={bad}", token)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_request"


async def test_inbox_filters(hub: RunningHub) -> None:
    token = await hub.login()
    web = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="w", text="web question",
        display_name="Yamada"))
    await hub.services.ingestor.ingest(Inbound(channel="email", identity_kind="email",
                                               identity_value="x@example.com", text="mail"))
    me = (await hub.api("GET", "/api/auth/me", token)).json()["agent"]
    await hub.api("PATCH", f"/api/conversations/{web.conversation.id}", token,
                  json={"assignee_id": me["id"]})

    async def ids(query: str) -> list[int]:
        response = await hub.api("GET", f"/api/conversations?{query}", token)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids("channel=web") == [web.conversation.id]
    assert await ids("assignee=me") == [web.conversation.id]
    assert web.conversation.id not in await ids("assignee=unassigned")
    assert await ids("q=yamada") == [web.conversation.id]
    assert await ids("q=mail") != [web.conversation.id]
    assert await ids("q=100%25") == []
    assert await ids("status=resolved") == []
    for query, code in [("channel=fax", "bad_channel"), ("status=bogus", "bad_status"),
                        ("assignee=someone", "bad_assignee")]:
        bad = await hub.api("GET", f"/api/conversations?{query}", token)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == code, query
    assert await ids("status=") == await ids("")  # empty filters mean "any"


async def test_reply_goes_out_on_the_last_channel_and_note_stays_inside(hub: RunningHub) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    cid = result.conversation.id
    reply = await hub.api("POST", f"/api/conversations/{cid}/messages", token,
                          json={"text": "Hi, how can I help?"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["channel"] == "web" and reply.json()["direction"] == "out"
    note = await hub.api("POST", f"/api/conversations/{cid}/messages", token,
                         json={"text": "VIP customer", "internal": True})
    assert note.json()["internal"] is True
    detail = (await hub.api("GET", f"/api/conversations/{cid}", token)).json()
    assert [i["sender_type"] for i in detail["timeline"]] == ["customer", "agent", "agent"]
    assert detail["timeline"][2]["direction"] == "internal"
    assert detail["first_response_at"] is not None
    assert detail["reply_channels"] == ["web"]
    for field in ("customer", "status", "assignee", "channels", "product", "timeline"):
        assert field in detail


async def test_reply_on_an_unreachable_channel_is_refused(hub: RunningHub) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    response = await hub.api("POST", f"/api/conversations/{result.conversation.id}/messages",
                             token, json={"text": "by mail?", "channel": "email"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "channel_unavailable"


@pytest.mark.parametrize("body,code", [
    ({"text": "x" * 10_001}, "too_long"), ({"text": "   "}, "empty_text"),
    ({"text": "hi", "channel": "fax"}, "bad_channel")])
async def test_bad_replies_get_clear_errors(hub: RunningHub, body: dict[str, object],
                                            code: str) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    response = await hub.api("POST", f"/api/conversations/{result.conversation.id}/messages",
                             token, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_unknown_conversation_is_a_json_404(hub: RunningHub) -> None:
    token = await hub.login()
    for method, body in (("GET", None), ("PATCH", {"status": "resolved"})):
        response = await hub.api(method, "/api/conversations/999999", token, json=body)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    response = await hub.api("POST", "/api/conversations/999999/messages", token,
                             json={"text": "hello"})
    assert response.status_code == 404


async def test_ids_beyond_64_bits_get_a_json_4xx(hub: RunningHub) -> None:
    """No id can be that large, on SQLite or PostgreSQL: a clear error, not a 500."""
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    huge = 2**63
    for method, path, body in (
            ("GET", f"/api/conversations/{huge}", None),
            ("PATCH", f"/api/conversations/{huge}", {"status": "resolved"}),
            ("POST", f"/api/conversations/{huge}/messages", {"text": "hi"}),
            ("GET", f"/api/customers/{huge}", None),
            ("GET", f"/api/conversations?customer_id={huge}", None),
            ("PATCH", f"/api/conversations/{result.conversation.id}", {"assignee_id": huge}),
            ("POST", f"/api/customers/{result.customer.id}/merge", {"other_id": huge})):
        response = await hub.api(method, path, token, json=body)
        assert response.status_code in {400, 404}, (method, path, response.text)
        assert response.json()["error"]["code"] in {"out_of_range", "not_found"}


async def test_a_tag_too_long_is_refused_not_cut_short(hub: RunningHub) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    path = f"/api/conversations/{result.conversation.id}"
    refused = await hub.api("PATCH", path, token, json={"tags": ["vip", "x" * 51]})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_tags"
    kept = await hub.api("PATCH", path, token, json={"tags": ["y" * 50]})
    assert kept.json()["tags"] == ["y" * 50]


async def test_an_unknown_handoff_value_is_refused(hub: RunningHub) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    response = await hub.api("PATCH", f"/api/conversations/{result.conversation.id}", token,
                             json={"handoff": "robot"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_handoff"


async def test_status_assign_and_tags(hub: RunningHub) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    path = f"/api/conversations/{result.conversation.id}"
    updated = (await hub.api("PATCH", path, token, json={
        "status": "resolved", "tags": ["返品", "vip", "vip"]})).json()
    assert updated["status"] == "resolved" and updated["tags"] == ["vip", "返品"]
    assert updated["resolved_at"] is not None
    bad = await hub.api("PATCH", path, token, json={"status": "closed"})
    assert bad.status_code == 400
    unassigned = (await hub.api("PATCH", path, token, json={"assignee_id": None})).json()
    assert unassigned["assignee_id"] is None
    timeline = (await hub.api("GET", path, token)).json()["timeline"]
    assert [i["data"].get("event") for i in timeline if i["type"] == "system"] == [
        "status_changed"]


async def test_cookie_session_needs_the_csrf_header_on_writes(hub: RunningHub) -> None:
    token = await hub.login()
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v", text="hello"))
    path = f"/api/conversations/{result.conversation.id}"
    async with httpx.AsyncClient(base_url=hub.url, cookies={SESSION_COOKIE: token}) as browser:
        assert (await browser.get(path)).status_code == 200
        without = await browser.patch(path, json={"status": "pending"})
        assert without.status_code == 403
        with_header = await browser.patch(
            path, json={"status": "pending"},
            headers={"X-CSRF-Token": csrf_token(hub.services.signer, token)})
        assert with_header.status_code == 200


async def test_openapi_schema_is_served(hub: RunningHub) -> None:
    schema = (await hub.http.get("/schema/openapi.json")).json()
    assert "/api/conversations" in schema["paths"]
    assert "/api/conversations:" in (await hub.http.get("/schema/openapi.yaml")).text


async def test_no_page_on_the_hubs_origin_loads_scripts_from_elsewhere(hub: RunningHub) -> None:
    """Litestar's interactive API docs load CDN scripts with no CSP: not served."""
    for page in ("/schema", "/schema/swagger", "/schema/redoc", "/schema/elements",
                 "/schema/rapidoc", "/schema/scalar"):
        response = await hub.http.get(page)
        assert "<script" not in response.text, page


async def test_healthz(hub: RunningHub) -> None:
    response = await hub.http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_ticket_names_its_product_and_store(hub: RunningHub) -> None:
    from hub.models import Product, Store

    async with hub.services.sessions() as session, session.begin():
        session.add(Product(sku="SKU-1", name="煎茶", name_en="Sencha", price=1280,
                            currency="JPY"))
        session.add(Store(id="s1", name="omo 渋谷店", address="東京都渋谷区"))
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="shelf-visitor", text="在庫は？",
        product_sku="SKU-1", store_id="s1"))
    token = await hub.login()
    detail = (await hub.api("GET", f"/api/conversations/{result.conversation.id}",
                            token)).json()
    assert detail["product"] == {"sku": "SKU-1", "name": "煎茶", "name_en": "Sencha",
                                 "price": 1280, "currency": "JPY"}
    assert detail["store"] == {"id": "s1", "name": "omo 渋谷店"}
