"""LINE adapter pieces that need no server: token windows, error mapping, message shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from linebot.v3.messaging.exceptions import ApiException

from channels.base import Outbound
from channels.line.client import api_error
from channels.line.outbound import build_messages, quick_reply
from channels.line.parse import in_order, map_event
from channels.line.store import _fresh_token
from tests.fakes.line_webhook import event, text, user_id

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=50)


def token_at(seconds_ago: float, **extra: object) -> dict[str, object]:
    issued = NOW - timedelta(seconds=seconds_ago)
    return {"reply_token": "t", "reply_token_at": issued.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            **extra}


@pytest.mark.parametrize(("data", "fresh"), [
    (token_at(0), True), (token_at(49.9), True), (token_at(50.1), False),
    (token_at(-3), True),  # LINE's clock slightly ahead
    (token_at(-30), False), (token_at(1, reply_token_used=True), False),
    ({"reply_token_at": token_at(1)["reply_token_at"]}, False), ({"reply_token": "t"}, False),
])
def test_reply_token_window(data: dict[str, object], fresh: bool) -> None:
    assert _fresh_token(data, NOW, WINDOW) is fresh


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True),
                                                   (400, False), (403, False), (404, False)])
def test_api_errors_keep_lines_message(status: int, retryable: bool) -> None:
    exc = ApiException(status=status, reason="Reason")
    exc.body = b'{"message": "LINE says no", "details": [{"property": "to"}]}'
    error = api_error(exc)
    assert str(error) == f"LINE {status}: LINE says no"
    assert error.retryable is retryable and error.details == [{"property": "to"}]


def test_api_error_without_a_json_body() -> None:
    exc = ApiException(status=502, reason="Bad Gateway")
    exc.body = b"<html>bad gateway</html>"
    assert str(api_error(exc)) == "LINE 502: <html>bad gateway</html>"


def test_files_other_than_images_go_out_as_links() -> None:
    pdf = {"name": "manual.pdf", "content_type": "application/pdf", "size": 9,
           "url": "/files/k/manual.pdf"}
    outbound = Outbound(item_id=1, conversation_id=1, channel="line", recipient="U",
                        text="", sender_type="agent", attachments=(pdf,))
    [message] = build_messages(outbound, "https://hub.example.com/")
    assert message.text == "manual.pdf: https://hub.example.com/files/k/manual.pdf"


def test_quick_reply_labels_fit_lines_limit() -> None:
    replies = quick_reply(["とても長いクイックリプライのラベルでございます、はい", "", "人と話す"])
    assert replies is not None
    assert [len(i.action.label) for i in replies.items] == [20, 4]
    assert quick_reply([]) is None


def test_standby_and_redelivered_events_carry_no_reply_token() -> None:
    standby = {**text(user_id(1), "hi"), "mode": "standby"}
    redelivered = text(user_id(1), "hi", redelivery=True)
    active = text(user_id(1), "hi")
    assert "reply_token" not in map_event(standby).inbound.data  # type: ignore[union-attr]
    assert "reply_token" not in map_event(redelivered).inbound.data  # type: ignore[union-attr]
    assert map_event(active).inbound.data["reply_token"]  # type: ignore[union-attr]


def test_group_room_and_sourceless_events_are_only_acknowledged() -> None:
    group = {**text(user_id(1), "hi"), "source": {"type": "group", "groupId": "C1",
                                                  "userId": user_id(1)}}
    room = {**text(user_id(1), "hi"), "source": {"type": "room", "roomId": "R1"}}
    nobody = {**event("follow", user_id(1)), "source": {}}
    assert [map_event(e).action for e in (group, room, nobody)] == ["ignore"] * 3
    assert in_order([map_event(e) for e in (group, room, nobody)]) == {}


@pytest.mark.parametrize("odd", [
    {"type": "message", "message": "not an object"},
    {"type": "message", "message": {"type": "image", "contentProvider": 5}},
    {"type": "postback", "postback": ["x"]}, {"type": "follow", "follow": None},
    {"type": "unsend", "unsend": 3}, {"type": "accountLink", "link": "ok"},
    {"type": "message", "deliveryContext": "yes", "message": {"type": "text", "text": 1}},
])
def test_odd_shapes_in_a_signed_body_never_crash(odd: dict[str, object]) -> None:
    raw = {**odd, "source": {"type": "user", "userId": user_id(1)}, "timestamp": "soon"}
    mapped = map_event(raw)
    assert mapped.user_id == user_id(1) and mapped.event_id.startswith("sha256:")
