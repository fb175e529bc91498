"""Background work and waits stop when they are told to, even at an awkward moment."""

from __future__ import annotations

import asyncio

from hub.background import Background, wait_for_event


async def _waits_forever(event: asyncio.Event) -> None:
    while True:
        await wait_for_event(event, 60)
        event.clear()


async def test_a_cancel_that_meets_a_wake_up_still_stops_the_loop() -> None:
    event = asyncio.Event()
    loop = asyncio.create_task(_waits_forever(event))
    await asyncio.sleep(0)  # the loop now waits on the event
    event.set()
    await asyncio.sleep(0)  # the wait is over, but the loop has not run on yet
    loop.cancel()
    await asyncio.wait({loop}, timeout=5)
    assert loop.cancelled()


async def test_wait_reports_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.01) is False
    event.set()
    assert await wait_for_event(event, 60) is True


async def test_close_cancels_what_outlives_the_grace_and_waits_for_it() -> None:
    work = Background("test")
    stopped: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append("slow")

    task = work.spawn(slow())
    await work.close(grace=0.01)
    assert task.cancelled() and stopped == ["slow"]
