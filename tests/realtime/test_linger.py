"""A hub stops after LINGER seconds without a connection, never at an idle instant between reconnects."""

from __future__ import annotations

import asyncio

from buttress.clock import FakeClock
from buttress.events import EventBus
from buttress.realtime import Realtime
from buttress.realtime._realtime import LINGER


async def test_a_hub_whose_clients_come_and_go_is_not_stopped_at_an_idle_instant() -> None:
    clock = FakeClock()
    with EventBus() as bus:
        realtime = Realtime(bus=bus, clock=clock)
        try:
            hub = realtime.hub()
            realtime.release(hub)  # the last client left: a check is due in LINGER seconds
            clock.advance(LINGER - 1)
            realtime.release(hub)  # another client came and left meanwhile
            clock.advance(1)
            realtime._stop_if_idle(hub)  # the first check: idle now, but only for a second
            assert realtime.hub() is hub
            clock.advance(LINGER - 1)
            realtime._stop_if_idle(hub)  # the second release's check: idle for LINGER seconds
            assert realtime.hub() is not hub
            await asyncio.sleep(0)  # the stopped hub's close runs on the loop
        finally:
            await realtime.aclose()
