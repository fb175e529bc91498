"""Continue-on-LINE codes with the bot on: a message that presents a code is no question
for the bot, and a refused code is answered, in words, on LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.knowledge import import_directory
from hub.settings import Settings
from kb.articles import default_articles_dir
from tests.channels.test_line_flow import web_chat_link, webhook
from tests.conftest import RunningHub
from tests.fakes.line_api import REPLY, FakeLine, line_settings
from tests.fakes.line_webhook import text, user_id


@pytest.fixture(autouse=True)
def lexical_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMOHUB_KB_EMBEDDINGS", "0")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, fake_line: FakeLine) -> Settings:
    return line_settings(database_url, tmp_path, fake_line,
                         line_basic_id="@omohub").with_changes(bot_enabled=True)


async def bot_texts(hub: RunningHub, conversation_id: int) -> list[str]:
    await hub.services.extras["assistant"].drain()
    token = await hub.login()
    ticket = (await hub.api("GET", f"/api/conversations/{conversation_id}", token)).json()
    return [i["text"] for i in ticket["timeline"] if i["sender_type"] == "bot"]


async def test_an_accepted_code_moves_the_chat_without_a_word_from_the_bot(
        hub: RunningHub) -> None:
    async with hub.services.sessions() as session, session.begin():
        await import_directory(session, default_articles_dir())
    question = "返品したいのですが、期限はいつまでですか？"  # the bot answers it: still "bot"
    conversation_id, code, _ = await web_chat_link(hub, question)
    said_before = await bot_texts(hub, conversation_id)
    path = f"/api/conversations/{conversation_id}"
    assert (await hub.api("GET", path, await hub.login())).json()["handoff"] == "bot"
    await webhook(hub, text(user_id(320), f"引き継ぎコード {code}"))
    assert await bot_texts(hub, conversation_id) == said_before  # no answer, no handoff
    ticket = (await hub.api("GET", path, await hub.login())).json()
    assert ticket["handoff"] == "bot" and "line" in ticket["channels"]


async def test_a_refused_code_is_answered_on_line_and_nothing_else_happens(
        hub: RunningHub, fake_line: FakeLine) -> None:
    await web_chat_link(hub)
    await webhook(hub, text(user_id(321), "引き継ぎコード 000000"))
    await fake_line.wait_for(lambda f: len(f.deliveries) == 1)
    [told] = fake_line.deliveries
    assert told.path == REPLY and "コード" in told.texts[0]
    token = await hub.login()
    listed = (await hub.api("GET", "/api/conversations?channel=line", token)).json()["items"]
    [ticket] = listed
    assert ticket["handoff"] == "bot"  # the bot neither answered nor handed over
    assert await bot_texts(hub, ticket["id"]) == [told.texts[0]]


async def test_a_bare_number_is_not_told_off_as_a_code(hub: RunningHub,
                                                       fake_line: FakeLine) -> None:
    await webhook(hub, text(user_id(322), "123456"))  # an order number, say
    token = await hub.login()
    [ticket] = (await hub.api("GET", "/api/conversations?channel=line", token)).json()["items"]
    assert not any("コード" in said for said in await bot_texts(hub, ticket["id"]))
