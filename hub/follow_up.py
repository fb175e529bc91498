"""An agent's reply to a web visitor who has left also goes out by e-mail (Intercom-like).

Web chat delivers to the open tabs of the visitor; when none is open in any hub process
(``recipient_away`` from the adapter, counted by hub/presence.py), the reply would wait
unseen until they come back. If the customer has
an e-mail address — verified, or one they typed in the chat for this purpose — the hub
sends the same text as a new e-mail item in the same ticket, through the usual outbox, so
it is threaded (``[#ticket]``, Message-ID) and their answer by mail lands in this ticket.
The web item stays where it is: a returning visitor sees the reply in the chat, and the
e-mail copy (``data.copy_of``) is not shown there twice.
"""

from __future__ import annotations

import logging

from hub import events
from hub.models import Conversation, SenderType, TimelineItem
from hub.outbox import recipient_for
from hub.services import Services
from hub.tickets import TicketError

log = logging.getLogger(__name__)
FROM_CHANNEL, TO_CHANNEL = "web", "email"


class EmailFollowUp:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_event(self, event: events.Event) -> None:
        payload = event.payload
        if (event.name != events.MESSAGE_UPDATED or not event.meta.get("recipient_away")
                or payload.get("channel") != FROM_CHANNEL
                or payload.get("sender_type") != SenderType.AGENT):
            return
        try:
            await self._copy_by_email(int(payload["id"]))
        except TicketError as exc:  # e.g. the e-mail channel is off: the reply waits in chat
            log.info("no e-mail follow-up for item %s: %s", payload["id"], exc)

    async def _copy_by_email(self, item_id: int) -> None:
        async with self.services.sessions() as session:
            item = await session.get(TimelineItem, item_id)
            conversation = await session.get(Conversation, item.conversation_id) if item else None
            if item is None or conversation is None:
                return
            if await recipient_for(session, conversation.customer_id, TO_CHANNEL) is None:
                return
        await self.services.tickets.reply(
            conversation.id, item.text, agent_id=item.agent_id,  # type: ignore[arg-type]
            channel=TO_CHANNEL, data={"copy_of": item.id, "reason": "visitor_away"})
