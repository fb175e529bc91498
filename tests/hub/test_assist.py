"""Agent assist: suggestions follow the customer's latest question, not their last words."""

from __future__ import annotations

import pytest

from channels.base import Inbound
from hub.assist import is_question
from tests.conftest import RunningHub

pytestmark = pytest.mark.usefixtures("lexical_only")


async def say(hub: RunningHub, *texts: str) -> int:
    conversation_id = 0
    for text in texts:
        result = await hub.services.ingestor.ingest(Inbound(
            channel="web", identity_kind="web", identity_value="visitor-assist", text=text))
        conversation_id = result.conversation.id
    return conversation_id


async def suggestions(hub: RunningHub, conversation_id: int) -> dict:
    token = await hub.login()
    response = await hub.api("GET", f"/api/conversations/{conversation_id}/suggestions", token)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("last_words", ["人と話したい", "オペレーターをお願いします",
                                        "解決しない", "talk to a human please"])
async def test_a_request_for_a_person_keeps_the_question(kb_hub: RunningHub,
                                                         last_words: str) -> None:
    conversation_id = await say(kb_hub, "購入した商品を返品したいです", last_words)
    found = await suggestions(kb_hub, conversation_id)
    assert found["query"] == "購入した商品を返品したいです"
    assert "返品" in found["items"][0]["title"]
    assert {"id", "title", "answer", "score", "confidence"} <= set(found["items"][0])


async def test_the_newest_question_wins(kb_hub: RunningHub) -> None:
    conversation_id = await say(kb_hub, "購入した商品を返品したいです", "送料はいくらですか")
    assert (await suggestions(kb_hub, conversation_id))["query"] == "送料はいくらですか"


async def test_no_question_yet_suggests_nothing(kb_hub: RunningHub) -> None:
    conversation_id = await say(kb_hub, "担当者と話したい")
    assert await suggestions(kb_hub, conversation_id) == {"query": None, "items": []}


async def test_unknown_ticket_is_404(kb_hub: RunningHub) -> None:
    token = await kb_hub.login()
    response = await kb_hub.api("GET", "/api/conversations/999999/suggestions", token)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_what_counts_as_a_question() -> None:
    assert is_question("ポイントカードをなくしました")
    assert not is_question("   ")
    assert not is_question("担当者と話す")  # the bot's own quick reply
    assert not is_question("解決した")
