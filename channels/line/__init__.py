"""LINE: webhook events in, reply/push out, all in the customer's one ticket.

Inbound: verify and parse (``parse.py``), then each user's events in timestamp order
(users concurrently), each committed through the hub's ingest before the webhook answers.
Slow work (profiles, greetings, media downloads) runs after the answer.

Outbound: the reply token of the ticket's latest inbound LINE item while it is unused and
younger than ``REPLY_WINDOW`` (free), else a push keyed by ``X-Line-Retry-Key`` derived from
the item id (paid, never delivered twice).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
from linebot.v3 import WebhookParser
from linebot.v3.messaging import Message

from channels.base import Attachment, Capabilities, Inbound, Outbound, SendResult, StatusUpdate
from channels.line import store
from channels.line.client import Content, LineApi, LineApiError
from channels.line.outbound import TEXT_LIMIT, batches, build_messages, retry_key
from channels.line.parse import CHANNEL, LineEvent, in_order, parse
from hub import events, links
from hub.assistant import bot_will_answer
from hub.background import Background
from hub.identity import PLACEHOLDER_NAME, InvalidIdentity, find_identity, set_reachable
from hub.ingest import IngestResult
from hub.media import pending_media, settle_media
from hub.models import SenderType, utcnow
from hub.security import BadToken
from hub.services import Services
from hub.status import apply_status

log = logging.getLogger(__name__)

# LINE documents reply tokens as single-use and valid for about a minute; observed expiry
# has been as short as ~30 s on some paths. 50 s leaves room for clock skew and the call.
REPLY_WINDOW = timedelta(seconds=50)
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
NONCE_PURPOSE = "line-account-link"
PROFILE_RETRY = 3600.0  # seconds
LOADING_SECONDS = 10
GREETINGS = {"ja": "友だち追加ありがとうございます！ご質問をこちらにお送りください。",
             "en": "Thanks for adding us! Send us your question here."}


class LineChannel:
    """The LINE channel adapter."""

    name = "line"
    capabilities = Capabilities(text_limit=TEXT_LIMIT * 5, media_types=("image/jpeg",
                                "image/png"), quick_replies=True,
                                reply_window_seconds=int(REPLY_WINDOW.total_seconds()),
                                identity_kind="line")

    def __init__(self, services: Services, api: LineApi | None = None) -> None:
        settings = services.settings
        self.services = services
        self.secret = settings.line_channel_secret or ""
        self.parser = WebhookParser(self.secret)
        self.api = api or LineApi(settings)
        self.media_retries: tuple[float, ...] = (0.5, 2.0)
        self.background = Background("LINE")
        self._profile_tried: dict[str, float] = {}
        self._started = utcnow()
        self._resumed = False

    # --- inbound ---------------------------------------------------------------------

    async def receive(self, body: bytes, signature: str | None) -> int:
        """Verify, then commit every event of ``body``; returns how many were handled.

        Raises ``parse.BadSignature`` / ``parse.BadBody`` before anything is stored."""
        parsed = parse(self.parser, self.secret, body, signature)
        await self.start()  # a no-op once the hub's lifespan has started the channel
        for event in parsed:
            if event.action == "ignore":
                log.info("LINE %s event outside a 1:1 chat acknowledged (%s)", event.type,
                         event.event_id)
        per_user = list(in_order(parsed).values())
        if len(per_user) == 1:  # the common case: no tasks needed
            await self._user_events(per_user[0])
            return len(per_user[0])
        outcomes = await asyncio.gather(*(self._user_events(items) for items in per_user),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the webhook answers 5xx; LINE redelivers, dedupe makes it safe
        return sum(len(items) for items in per_user)

    async def _user_events(self, items: list[LineEvent]) -> None:
        for event in items:
            try:
                await self._handle(event)
            except InvalidIdentity as exc:
                log.warning("LINE event %s dropped: %s", event.event_id, exc)

    async def _handle(self, event: LineEvent) -> None:
        if event.inbound is not None and "unsupported" in event.inbound.data:
            log.info("LINE %s kept as an unsupported item (%s)",
                     event.inbound.data["unsupported"], event.event_id)
        if event.action in {"ingest", "follow"}:
            result = await self._ingest(event)
            if result.created:
                self._after_ingest(event, result)
        elif event.action == "unfollow":
            await self._set_reachable(event.user_id or "", False)
        elif event.action == "unsend":
            await self._unsend(event)
        elif event.action == "account_link":
            await self._account_link(event)

    async def _ingest(self, event: LineEvent) -> IngestResult:
        inbound = event.inbound
        assert inbound is not None
        code = links.find_code(inbound.text) if inbound.kind == "message" else None
        refused = False
        if code:
            inbound, refused = await self._with_code(inbound, code)
        result = await self.services.ingestor.ingest(inbound)
        if refused and result.created:  # say so, or they wait for nothing
            await self.services.tickets.reply(
                result.conversation.id, links.refused_code_text(result.conversation.locale),  # type: ignore[arg-type]
                agent_id=None, channel="line", sender_type=SenderType.BOT,
                data={"reason": "refused_link_code"})
        return result

    async def _with_code(self, inbound: Inbound, code: str) -> tuple[Inbound, bool]:
        """The message once its code is tried (joined to the code's ticket when accepted),
        and whether to tell the sender it was refused: only when the message calls it a
        code, since a bare number may as well be an order number."""
        async with self.services.sessions() as session, session.begin():
            redeemed = await links.redeem(session, self.services.signer, code, "line",
                                          inbound.identity_value)
        if redeemed is not None:
            inbound = replace(inbound, conversation_hint=redeemed.conversation_id,
                              identity_verified=True)
        elif not links.names_a_code(inbound.text):
            return inbound, False
        mark = "accepted" if redeemed is not None else "refused"
        return replace(inbound, data={**inbound.data, links.CODE_MARK: mark}), redeemed is None

    def _after_ingest(self, event: LineEvent, result: IngestResult) -> None:
        placeholder = bool(result.customer.attributes.get(PLACEHOLDER_NAME))
        if event.action == "follow" or (placeholder and self._profile_due(event.user_id)):
            self.spawn(self._welcome(event, result, greet=event.action == "follow"))
        if event.media and event.media.get("status") == "pending":
            self.spawn(self.download_media(result.item.id, event.media))  # type: ignore[arg-type]
        if bot_will_answer(self.services.settings, result):
            self.spawn(self._loading(event.user_id or ""))

    async def _loading(self, user_id: str) -> None:
        """LINE's loading animation while the bot works; its answer ends it."""
        try:
            await self.api.loading(user_id, LOADING_SECONDS)
        except (LineApiError, *NETWORK_ERRORS) as exc:
            log.info("LINE loading animation for %s failed: %s", user_id, exc)

    def _profile_due(self, user_id: str | None) -> bool:
        """At most one profile look-up per user and ``PROFILE_RETRY`` (LINE may refuse it)."""
        now = time.monotonic()
        if not user_id or now - self._profile_tried.get(user_id, -PROFILE_RETRY) < PROFILE_RETRY:
            return False
        if len(self._profile_tried) > 50_000:
            self._profile_tried.clear()
        self._profile_tried[user_id] = now
        return True

    async def _set_reachable(self, user_id: str, reachable: bool) -> None:
        async with self.services.sessions() as session, session.begin():
            known = await find_identity(session, "line", user_id)
            was_reachable = known is not None and known.reachable
            identity = await set_reachable(session, "line", user_id, reachable)
        if identity is not None and was_reachable and not reachable:  # once, not per redelivery
            await self.services.tickets.note(identity.customer_id, CHANNEL, "line_blocked")

    async def _unsend(self, event: LineEvent) -> None:
        if not event.target_id:
            return
        item = await store.find_message(self.services.sessions, event.user_id or "",
                                        event.target_id)
        if item is not None and item.external_id:
            await apply_status(self.services.sessions, self.services.bus,
                               StatusUpdate("line", item.external_id, "unsent"))

    # --- slow work after the webhook answered -----------------------------------------

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self.background.spawn(work)

    async def drain(self) -> None:
        """Wait for the background work started so far (tests, shutdown)."""
        await self.background.drain()

    async def start(self) -> None:
        """Called by the hub after migrations: resume downloads a previous run left."""
        if not self._resumed:
            self._resumed = True
            self.spawn(self._resume_media())

    async def stop(self, grace: float = 10.0) -> None:
        """Called on shutdown: let background work finish (briefly), close connections."""
        await self.background.close(grace)
        await self.api.aclose()

    async def _welcome(self, event: LineEvent, result: IngestResult, greet: bool) -> None:
        """Profile (name, picture, language) and, on follow, the bot's greeting."""
        user_id = event.user_id or ""
        try:
            profile = await self.api.profile(user_id)
        except (LineApiError, *NETWORK_ERRORS) as exc:
            log.warning("LINE profile of %s unavailable: %s", user_id, exc)
            profile = {}
        conversation_id = result.conversation.id or 0
        if not profile and not greet:
            return
        summary = await store.adopt_profile(self.services.sessions, result.customer.id or 0,
                                            conversation_id, profile)
        if summary is not None:
            await self.services.bus.publish(events.Event(
                events.CONVERSATION_UPDATED, summary, conversation_id))
        if greet:
            language = "ja" if str(profile.get("language") or "ja").startswith("ja") else "en"
            await self.services.tickets.reply(conversation_id, GREETINGS[language],
                                              agent_id=None, sender_type="bot", channel="line")

    async def download_media(self, item_id: int, media: dict[str, Any]) -> None:
        """Fetch content from the data API, store it, attach it; retried, then marked broken
        with the reason."""
        outcome = await self._fetch(media)
        if isinstance(outcome, Attachment):
            attachments, state = [outcome.as_dict()], {**media, "status": "stored"}
        else:
            attachments, state = [], {**media, "status": "failed", "reason": outcome}
        await settle_media(self.services.sessions, self.services.bus, item_id, attachments,
                           state)

    async def _resume_media(self) -> None:
        """Downloads a previous run left unfinished (LINE deletes content after a while)."""
        for item in await pending_media(self.services.sessions, "line", self._started):
            await self.download_media(item.id or 0, dict(item.data["media"]))

    async def _fetch(self, media: dict[str, Any]) -> Attachment | str:
        """The stored attachment, or why there is none (after ``media_retries``)."""
        limit = self.services.settings.max_upload_bytes
        if int(media.get("file_size") or 0) > limit:
            return f"larger than {limit} bytes"
        reason = "not downloaded"
        for delay in (*self.media_retries, None):
            try:
                content = await self._content(media)
            except LineApiError as exc:
                reason = str(exc)
                if not exc.retryable:
                    return reason
            except NETWORK_ERRORS as exc:
                reason = f"network: {exc!r}"[:300]
            else:
                if len(content.data) > limit:
                    return f"larger than {limit} bytes"
                return self.services.files.save(_media_name(media, content.content_type),
                                                content.data, content.content_type)
            if delay is not None:
                await asyncio.sleep(delay)
        return reason

    async def _content(self, media: dict[str, Any]) -> Content:
        """Video and audio are downloadable once LINE finished transcoding them."""
        message_id = str(media["message_id"])
        if media.get("type") in {"video", "audio"}:
            state = await self.api.transcoding(message_id)
            if state != "succeeded":
                raise LineApiError(0 if state == "processing" else 422, f"transcoding {state}")
        return await self.api.content(message_id)

    # --- account link -----------------------------------------------------------------

    def account_link_nonce(self, customer_id: int) -> str:
        """An unpredictable, expiring nonce naming the customer who logged in (step 3)."""
        return self.services.signer.sign(NONCE_PURPOSE, {
            "c": customer_id, "r": secrets.token_urlsafe(16)}, 600)

    async def _account_link(self, event: LineEvent) -> None:
        """Join the LINE user to the customer who owns the nonce; the ticket shows the
        outcome either way (a failed or forged link changes no customer)."""
        linked = await self._redeem_nonce(event)
        assert event.inbound is not None
        data = {**event.inbound.data, "result": str(event.link.get("result", "")),
                "event": "line_account_linked" if linked else "line_account_link_failed"}
        await self.services.ingestor.ingest(replace(event.inbound, data=data))

    async def _redeem_nonce(self, event: LineEvent) -> bool:
        nonce = str(event.link.get("nonce") or "")
        if event.link.get("result") != "ok" or not nonce:
            return False
        try:
            customer_id = int(self.services.signer.unsign(NONCE_PURPOSE, nonce)["c"])
        except (BadToken, KeyError, TypeError, ValueError):
            log.warning("LINE account link with an unknown nonce (%s)", event.event_id)
            return False
        return await store.use_nonce(self.services.sessions, self.services.signer, nonce,
                                     customer_id, event.user_id or "")

    # --- outbound ---------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> SendResult:
        messages = build_messages(outbound, self.services.settings.public_url)
        if not messages:
            return SendResult(False, error="nothing to send")
        done = await store.delivery_progress(self.services.sessions, outbound.item_id)
        ids: list[str] = []
        for index, batch in enumerate(batches(messages)):
            if str(index) in done:
                ids += done[str(index)]["ids"]
                continue
            try:
                via, sent = await self._deliver(outbound, index, batch)
            except LineApiError as exc:
                return SendResult(False, retryable=exc.retryable, error=str(exc))
            except NETWORK_ERRORS as exc:
                return SendResult(False, retryable=True, error=f"network: {exc!r}"[:500])
            await store.record_batch(self.services.sessions, outbound.item_id, index, via, sent)
            ids += sent
        return SendResult(True, external_id=ids[0] if ids else None)

    async def _deliver(self, outbound: Outbound, index: int,
                       batch: list[Message]) -> tuple[str, list[str]]:
        if index == 0:
            token = await store.claim_reply_token(self.services.sessions,
                                                  outbound.conversation_id,
                                                  outbound.recipient, utcnow(), REPLY_WINDOW)
            if token:
                try:
                    return "reply", await self.api.reply(token, batch)
                except LineApiError as exc:
                    if exc.status != 400:
                        raise
                    log.info("LINE refused the reply token (%s); pushing instead", exc)
        try:
            return "push", await self.api.push(outbound.recipient, batch,
                                               retry_key(outbound.item_id, index))
        except LineApiError as exc:
            if exc.status == 409:  # this retry key was accepted before: delivered once
                return "push", []
            raise


def _media_name(media: dict[str, Any], content_type: str) -> str:
    if media.get("file_name"):
        return str(media["file_name"])
    extension = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif",
                 "video/mp4": "mp4", "audio/x-m4a": "m4a", "audio/mp4": "m4a"}.get(
        content_type, "bin")
    return f"line-{media.get('type', 'file')}-{media.get('message_id', '')}.{extension}"
