"""Publishing from an observer, which must never break the call it observes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from buttress.events._default import get_event_bus

if TYPE_CHECKING:
    from buttress.events._bus import EventBus

__all__ = ["publish_quietly"]

_log = logging.getLogger("buttress.events")


def publish_quietly(bus: EventBus | None, topic: str, payload: dict[str, Any]) -> None:
    """Publish on ``bus`` (default: the process-wide one); a failure is logged, never raised.

    A closed bus or a bad payload costs an event, not the caller's result.
    """
    try:
        (bus if bus is not None else get_event_bus()).publish(topic, payload)
    except Exception:  # noqa: BLE001 - see above
        _log.debug("could not publish %s", topic, exc_info=True)
