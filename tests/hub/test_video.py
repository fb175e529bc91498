"""Video sessions in the ticket: the API, single-use links, signalling over real Socket.IO
clients within one session only, and the item's life from created to ended."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import socketio

from channels.base import Inbound
from channels.video import VideoChannel, end, new_state
from hub import events
from hub.serialize import iso
from tests.conftest import RunningHub
from tests.socket_client import TIMEOUT, Client

LINK = re.compile(r'data-link="([^"]+)"')
OFFER = {"description": {"type": "offer", "sdp": "v=0 offer"}}


@pytest.fixture
async def token(hub: RunningHub) -> str:
    return await hub.login()


async def _ticket(hub: RunningHub, visitor: str = "video-visitor") -> int:
    result = await hub.services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value=visitor, text="映像で見てほしい"))
    return result.conversation.id  # type: ignore[return-value]


async def _start(hub: RunningHub, token: str, conversation_id: int) -> dict[str, Any]:
    response = await hub.api("POST", f"/api/conversations/{conversation_id}/video", token)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def _open(hub: RunningHub, url: str) -> httpx.Response:
    return await hub.http.get(_path(url), headers={"Accept-Language": "en"})


async def _join(hub: RunningHub, url: str) -> httpx.Response:
    """What the page's script does: spend the link the page carries."""
    page = await _open(hub, url)
    assert page.status_code == 200, page.text
    found = LINK.search(page.text)
    assert found is not None
    session_id = urlsplit(url).path.rsplit("/", 1)[1]
    return await hub.http.post(f"/video/{session_id}/join", json={"t": found.group(1)})


async def _credential(hub: RunningHub, url: str) -> str:
    joined = await _join(hub, url)
    assert joined.status_code == 200, joined.text
    return str(joined.json()["credential"])


async def _item(hub: RunningHub, token: str, conversation_id: int,
                item_id: int) -> dict[str, Any]:
    detail = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    return next(item for item in detail["timeline"] if item["id"] == item_id)


async def _connect(hub: RunningHub, clients: list[Client], credential: str) -> Client:
    peer = Client("/video")
    clients.append(peer)
    await peer.connect(hub.url, {"credential": credential})
    return peer


def _updates(hub: RunningHub, status: str) -> asyncio.Queue[dict[str, Any]]:
    """Video items published with ``status``, as agents are told of them."""
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def collect(event: events.Event) -> None:
        if event.name == events.MESSAGE_UPDATED and event.payload["data"].get("status") == status:
            await seen.put(event.payload)

    hub.services.bus.subscribe(collect)
    return seen


# --------------------------------------------------------------------------- the API

async def test_starting_a_session_needs_an_agent(hub: RunningHub) -> None:
    conversation_id = await _ticket(hub)
    response = await hub.http.post(f"/api/conversations/{conversation_id}/video")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_unknown_conversation_is_404(hub: RunningHub, token: str) -> None:
    response = await hub.api("POST", "/api/conversations/9999/video", token)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_session_is_an_item_in_the_ticket(hub: RunningHub, token: str) -> None:
    created: list[events.Event] = []

    async def collect(event: events.Event) -> None:
        if event.name == events.MESSAGE_CREATED:
            created.append(event)

    hub.services.bus.subscribe(collect)
    conversation_id = await _ticket(hub)
    started = await _start(hub, token, conversation_id)
    assert {"id", "agent_url", "customer_url"} <= started.keys()
    for role in ("agent", "customer"):
        assert urlsplit(started[f"{role}_url"]).path == f"/video/{started['id']}"
    tokens = [parse_qs(urlsplit(started[k]).query)["t"][0] for k in ("agent_url", "customer_url")]
    assert tokens[0] != tokens[1]
    item = await _item(hub, token, conversation_id, started["id"])
    assert (item["type"], item["channel"], item["sender_type"], item["direction"]) == (
        "video", "video", "agent", "out")
    assert item["data"]["status"] == "created"
    assert [e.payload["id"] for e in created if e.payload["type"] == "video"] == [started["id"]]
    detail = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    assert "video" in detail["channels"]
    assert detail["last_channel"] == "web"  # replies still go out on web chat


# --------------------------------------------------------------------------- the links

async def test_a_link_joins_once(hub: RunningHub, token: str) -> None:
    conversation_id = await _ticket(hub)
    started = await _start(hub, token, conversation_id)
    first = await _open(hub, started["customer_url"])
    assert first.status_code == 200
    assert 'data-rtc-state="new"' in first.text and 'data-role="customer"' in first.text
    assert "media-src 'self' blob: mediastream:" in first.headers["content-security-policy"]
    assert first.headers["cache-control"] == "no-store"
    # a link preview fetches the page: that spends nothing
    assert (await _open(hub, started["customer_url"])).status_code == 200
    assert (await _item(hub, token, conversation_id, started["id"]))["data"]["used"] == {}
    joined = await _join(hub, started["customer_url"])
    assert joined.status_code == 200 and joined.json()["role"] == "customer"
    again = await _open(hub, started["customer_url"])
    assert again.status_code == 403
    assert "already been used" in again.text and "data-link" not in again.text
    link = parse_qs(urlsplit(started["customer_url"]).query)["t"][0]
    rejoined = await hub.http.post(f"/video/{started['id']}/join", json={"t": link})
    assert rejoined.status_code == 403 and rejoined.json()["error"]["code"] == "link_used"
    item = await _item(hub, token, conversation_id, started["id"])
    assert list(item["data"]["used"]) == ["customer"]
    assert (await _join(hub, started["agent_url"])).status_code == 200  # its own token


async def test_the_page_speaks_japanese_by_default(hub: RunningHub, token: str) -> None:
    started = await _start(hub, token, await _ticket(hub))
    page = await hub.http.get(_path(started["agent_url"]), headers={"Accept-Language": "ja"})
    assert "ビデオ通話" in page.text and 'lang="ja"' in page.text


async def test_an_expired_link_is_refused(hub: RunningHub, token: str) -> None:
    conversation_id = await _ticket(hub)
    started = await _start(hub, token, conversation_id)
    video: VideoChannel = hub.services.extras["video"]
    expired = video.link_token(started["id"], "customer", ttl=timedelta(seconds=-1))
    page = await hub.http.get(f"/video/{started['id']}?t={expired}",
                              headers={"Accept-Language": "en"})
    assert page.status_code == 403 and "expired" in page.text
    item = await _item(hub, token, conversation_id, started["id"])
    assert item["data"]["used"] == {}


@pytest.mark.parametrize("query", ["", "?t=forged.token", "?t=" + "x" * 5000])
async def test_a_bad_link_is_refused(hub: RunningHub, token: str, query: str) -> None:
    started = await _start(hub, token, await _ticket(hub))
    page = await hub.http.get(f"/video/{started['id']}{query}")
    assert page.status_code == 403 and "data-link" not in page.text


async def test_a_link_for_one_session_does_not_open_another(hub: RunningHub,
                                                            token: str) -> None:
    conversation_id = await _ticket(hub)
    first = await _start(hub, token, conversation_id)
    second = await _start(hub, token, conversation_id)
    link = parse_qs(urlsplit(first["customer_url"]).query)["t"][0]
    page = await hub.http.get(f"/video/{second['id']}?t={link}")
    assert page.status_code == 403
    joined = await hub.http.post(f"/video/{second['id']}/join", json={"t": link})
    assert joined.status_code == 403 and joined.json()["error"]["code"] == "bad_link"
    assert (await _item(hub, token, conversation_id, second["id"]))["data"]["used"] == {}
    assert (await _open(hub, first["customer_url"])).status_code == 200  # still unused


# --------------------------------------------------------------------------- signalling

async def test_signals_stay_within_their_session(hub: RunningHub, token: str,
                                                 clients: list[Client]) -> None:
    conversation_id = await _ticket(hub)
    sessions = [await _start(hub, token, conversation_id) for _ in range(2)]
    agent_a, customer_a, agent_b, customer_b = [
        await _connect(hub, clients, await _credential(hub, s[f"{role}_url"]))
        for s in sessions for role in ("agent", "customer")]
    assert await agent_a.call("hello") == {"ok": True, "role": "agent", "present": ["customer"]}
    assert (await agent_a.call("signal", OFFER))["ok"]
    assert await customer_a.next("signal") == OFFER
    answer = {"description": {"type": "answer", "sdp": "v=0 answer in B"}}
    assert (await customer_b.call("signal", answer))["ok"]
    # Had A's offer leaked, it would have been queued to B's peers before B's own answer.
    assert await agent_b.next("signal") == answer
    assert customer_b.queue("signal").empty() and agent_a.queue("signal").empty()
    candidate = {"candidate": {"candidate": "candidate:1 1 udp 1 192.0.2.2 5000 typ host",
                               "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u"}}
    assert (await customer_a.call("signal", candidate))["ok"]
    assert await agent_a.next("signal") == candidate


@pytest.mark.parametrize("payload", [None, "offer", {"description": {"type": "rollback"}},
                                     {"candidate": {"candidate": 5}}])
async def test_malformed_signals_are_refused(hub: RunningHub, token: str, clients: list[Client],
                                             payload: Any) -> None:
    started = await _start(hub, token, await _ticket(hub))
    agent = await _connect(hub, clients, await _credential(hub, started["agent_url"]))
    answer = await agent.call("signal", payload)
    assert answer["ok"] is False and answer["error"]["code"] == "bad_payload"


@pytest.mark.parametrize("kind", ["forged", "link_token"])
async def test_a_socket_needs_a_page_credential(hub: RunningHub, token: str, clients: list[Client],
                                                kind: str) -> None:
    started = await _start(hub, token, await _ticket(hub))
    # The link's own token is no socket credential either: only the page's is.
    link = parse_qs(urlsplit(started["agent_url"]).query)["t"][0]
    peer = Client("/video")
    clients.append(peer)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(hub.url, {"credential": link if kind == "link_token"
                                     else "forged.credential"})
    assert (await peer.next("connect_error"))["data"]["code"] == "bad_link"


# --------------------------------------------------------------------------- the session's life

async def test_hang_up_ends_the_session(hub: RunningHub, token: str, clients: list[Client]) -> None:
    conversation_id = await _ticket(hub)
    started = await _start(hub, token, conversation_id)
    credentials = [await _credential(hub, started[f"{r}_url"]) for r in ("agent", "customer")]
    agent = await _connect(hub, clients, credentials[0])
    customer = await _connect(hub, clients, credentials[1])
    assert await agent.next("peer-joined") == {"role": "customer"}
    live = await _item(hub, token, conversation_id, started["id"])
    assert live["data"]["status"] == "live" and live["data"]["started_at"]
    assert set(live["data"]["joined"]) == {"agent", "customer"}
    ended = _updates(hub, "ended")
    assert (await customer.call("hangup"))["ok"]
    assert (await agent.next("ended"))["by"] == "customer"
    published = await asyncio.wait_for(ended.get(), TIMEOUT)
    item = await _item(hub, token, conversation_id, started["id"])
    assert published["id"] == started["id"] and item["data"] == published["data"]
    assert item["data"]["status"] == "ended" and item["data"]["ended_by"] == "customer"
    assert isinstance(item["data"]["duration"], int) and item["data"]["ended_at"]
    late = Client("/video")
    clients.append(late)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await late.connect(hub.url, {"credential": credentials[0]})
    assert (await late.next("connect_error"))["data"]["code"] == "session_ended"


async def test_both_peers_leaving_ends_the_session(hub: RunningHub, token: str,
                                                   clients: list[Client]) -> None:
    conversation_id = await _ticket(hub)
    started = await _start(hub, token, conversation_id)
    agent = await _connect(hub, clients, await _credential(hub, started["agent_url"]))
    customer = await _connect(hub, clients, await _credential(hub, started["customer_url"]))
    ended = _updates(hub, "ended")
    await customer.sio.disconnect()
    assert await agent.next("peer-left") == {"role": "customer"}
    assert (await _item(hub, token, conversation_id, started["id"]))["data"]["status"] == "live"
    await agent.sio.disconnect()
    published = await asyncio.wait_for(ended.get(), TIMEOUT)
    assert published["data"]["ended_by"] == "left"


def test_duration_runs_from_going_live_to_the_end() -> None:
    live = {**new_state(datetime(2026, 1, 1, tzinfo=UTC)), "status": "live",
            "started_at": iso(datetime(2026, 1, 1, 10, 0, tzinfo=UTC))}
    ended = end(live, "agent", datetime(2026, 1, 1, 10, 1, 5, 400_000, tzinfo=UTC))
    assert ended is not None
    assert (ended["status"], ended["duration"], ended["ended_by"]) == ("ended", 65, "agent")
    assert end(ended, "customer", datetime(2026, 1, 1, 11, tzinfo=UTC)) is None
    never_live = end(new_state(datetime(2026, 1, 1, tzinfo=UTC)), "agent",
                     datetime(2026, 1, 1, 10, tzinfo=UTC))
    assert never_live is not None and never_live["duration"] == 0


async def test_the_customers_chat_history_shows_messages_not_the_session(
        hub: RunningHub, token: str) -> None:
    conversation_id = await _ticket(hub, visitor="history-visitor")
    await _start(hub, token, conversation_id)
    current, items = await hub.services.tickets.customer_view("web", "history-visitor")
    assert current == conversation_id
    assert [(i["sender_type"], i["text"]) for i in items] == [("customer", "映像で見てほしい")]
