"""Provider status reports land on the right item and nowhere else."""

from __future__ import annotations

from channels.base import Inbound, StatusUpdate
from hub.services import Services
from hub.status import apply_status


async def test_status_updates_the_item_by_provider_id(services: Services) -> None:
    result = await services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value="U" + "1" * 32, text="hi",
        external_id="line-msg-1"))
    unsent = await apply_status(services.sessions, services.bus,
                                StatusUpdate("line", "line-msg-1", "unsent"))
    assert unsent is not None and unsent.id == result.item.id
    assert unsent.data["unsent"] is True and unsent.text == "hi"
    failed = await apply_status(services.sessions, services.bus,
                                StatusUpdate("line", "line-msg-1", "failed", "550 no user"))
    assert failed is not None and failed.delivery_status == "failed"
    assert failed.error == "550 no user"


async def test_unknown_ids_and_other_channels_change_nothing(services: Services) -> None:
    await services.ingestor.ingest(Inbound(
        channel="line", identity_kind="line", identity_value="U" + "1" * 32, text="hi",
        external_id="same-id"))
    assert await apply_status(services.sessions, services.bus,
                              StatusUpdate("email", "same-id", "failed")) is None
    assert await apply_status(services.sessions, services.bus,
                              StatusUpdate("line", "nope", "failed")) is None
