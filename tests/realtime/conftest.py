"""Fixtures of the realtime tests: a Realtime on a fresh bus and memory log, served by uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from fastapi import FastAPI

from buttress._bearer import AdminAuth
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import RealtimeSettings
from buttress.events import EventBus
from buttress.realtime import MemoryTopicLog, Realtime, TopicLog, realtime_router

from ._live import serving

JWT_KEY = "realtime-test-jwt-key-0123456789abcdef-0123456789"
ADMIN_TOKEN = "realtime-admin-token-0123456789"

Serve = Callable[..., Any]


def token(clock: Clock, *, lifetime: float = 3600.0, subject: str = "ada") -> str:
    """A JWT signed with the tests' key, expiring ``lifetime`` seconds after ``clock``'s now."""
    return jwt.encode({"sub": subject, "exp": int(clock.time() + lifetime)}, JWT_KEY, algorithm="HS256")


@contextmanager
def realtime_server(
    *,
    log: TopicLog | None = None,
    clock: Clock = SYSTEM_CLOCK,
    public: tuple[str, ...] = ("news.**",),
    bus: EventBus | None = None,
    **settings: Any,
) -> Iterator[tuple[Realtime, str]]:
    """A Realtime (own bus and log) behind ``realtime_router`` under uvicorn; yields it and ``host:port``."""
    own_bus = bus is None
    bus = bus if bus is not None else EventBus(clock=clock)
    chosen = RealtimeSettings(**settings)
    log = log if log is not None else MemoryTopicLog(retention=chosen.retention)
    realtime = Realtime(bus=bus, log=log, settings=chosen, clock=clock)
    auth = AdminAuth(token=ADMIN_TOKEN, jwt_key=JWT_KEY, clock=clock)
    app = FastAPI()
    app.include_router(realtime_router(realtime, public=public, auth=auth))
    try:
        with serving(app) as address:
            try:
                yield realtime, address
            finally:
                realtime.close()  # while the server's loop runs: its hub's tasks end there
    finally:
        realtime.close()
        if own_bus:
            bus.close()


@pytest.fixture
def served() -> Iterator[tuple[Realtime, str]]:
    with realtime_server(retention=100) as pair:
        yield pair
