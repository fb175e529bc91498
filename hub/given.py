"""Addresses a web chat customer types ("reply to me at …", 「折り返しはこちらへ 090-…」)
become *unverified* identities of theirs: an e-mail address, so a reply reaches them by mail
after they left (hub/follow_up.py), and a phone number, so their call lands in the merge
suggestions of the right customer. A note in the timeline tells the agent. Unverified, an
identity never pulls another channel's messages in by itself (hub/identity.py): mail from
it proves it (channels/email), an agent may verify it, or the inbox suggests the merge."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection

from sqlalchemy.exc import IntegrityError

from hub import events
from hub.identity import InvalidIdentity, give_identity, normalize_email, normalize_identity
from hub.models import Conversation, ItemKind, SenderType, TimelineItem
from hub.pii import phone_numbers_in
from hub.serialize import item_json
from hub.services import Services
from hub.tickets import system_note

MAX_GIVEN_PER_MESSAGE = 3
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
                      r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def addresses_in(text: str) -> list[str]:
    """E-mail addresses written in a chat message (full-width ＠ and letters too),
    normalised, in order, without repeats."""
    return _normalised(_ADDRESS.findall(unicodedata.normalize("NFKC", text)),
                       lambda raw: normalize_email(raw.strip(".'")))


def phones_in(text: str) -> list[str]:
    """Phone numbers written in a chat message, as E.164, in order, without repeats (read
    as the VOC export's masking reads them, so an order number is not one)."""
    return _normalised(phone_numbers_in(text), lambda raw: normalize_identity("phone", raw))


def _normalised(raw_values: list[str], normalize: Callable[[str], str]) -> list[str]:
    found: list[str] = []
    for raw in raw_values:
        try:
            value = normalize(raw)
        except InvalidIdentity:
            continue
        if value not in found:
            found.append(value)
    return found


FINDERS: dict[str, Callable[[str], list[str]]] = {"email": addresses_in, "phone": phones_in}


class GivenInChat:
    """Bus subscriber: web chat customer messages → identities of the kinds ``kinds``
    (those a configured channel can reach), never the hub's own addresses."""

    def __init__(self, services: Services, kinds: Collection[str],
                 own: Collection[str] = ()) -> None:
        self.services = services
        self.kinds = [kind for kind in FINDERS if kind in kinds]
        self.own = set(own)

    async def on_event(self, event: events.Event) -> None:
        payload = event.payload
        if (event.name != events.MESSAGE_CREATED or event.conversation_id is None
                or payload.get("channel") != "web" or payload.get("type") != ItemKind.MESSAGE
                or payload.get("sender_type") != SenderType.CUSTOMER):
            return
        text = str(payload.get("text") or "")
        for kind in self.kinds:
            values = [v for v in FINDERS[kind](text) if v not in self.own]
            for value in values[:MAX_GIVEN_PER_MESSAGE]:
                await self.given(event.conversation_id, kind, value)

    async def given(self, conversation_id: int, kind: str, value: str) -> TimelineItem | None:
        """Store ``value`` as the ticket's customer's (unverified) and note it in the
        timeline for the agent; None when it was theirs already."""
        for _attempt in range(2):  # a race on the unique (kind, value): look again
            try:
                return await self._give(conversation_id, kind, value)
            except IntegrityError:
                continue
        return None

    async def _give(self, conversation_id: int, kind: str, value: str) -> TimelineItem | None:
        async with self.services.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                return None
            given = await give_identity(session, conversation.customer_id, kind, value,
                                        actor_type="customer", source="web_chat")
            if not given.created and given.holder_id is None:
                return None
            note = system_note(conversation_id, "web", "identity_given", kind=kind,
                               value=value, holder_id=given.holder_id)
            session.add(note)
            await session.flush()
        await self.services.bus.publish(events.Event(events.MESSAGE_CREATED, item_json(note),
                                                     conversation_id))
        return note
