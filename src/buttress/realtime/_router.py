"""The WebSocket and SSE endpoints, as a FastAPI router to mount on the ops server or on any app.

::

    app.include_router(realtime_router(public=["news.**"]), prefix="/realtime")

The wire protocol is in docs/realtime.md: JSON messages, several per frame separated by
``\\n``; ``event`` messages carry an ``id`` to resume from (``last_id`` / ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Annotated, Any

from buttress._extras import require

require("fastapi", "server", "buttress.realtime's WebSocket and SSE endpoints")

from fastapi import APIRouter, Header, Query, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from buttress._bearer import AdminAuth, AdminAuthError
from buttress.config import get_settings
from buttress.errors import BackendUnavailable, ValidationError
from buttress.events import compile_pattern, validate_topic
from buttress.realtime._auth import (
    PROTOCOL,
    Authorize,
    Identity,
    Policy,
    bearer_from_subprotocols,
    check_pattern,
)
from buttress.realtime._connection import Connection, Item
from buttress.realtime._entry import Position, encode_message, parse_id
from buttress.realtime._hub import PING, Feed, Hub
from buttress.realtime._realtime import Realtime
from buttress.realtime._telemetry import RealtimeTelemetry

__all__ = ["realtime_router"]

logger = logging.getLogger("buttress.realtime")

_SAMPLE = 7  # writes & _SAMPLE == 1: the delivery histogram sees the first write and then one in eight
_CLOSE_WAIT = 1.0  # seconds a close may take on a client that stopped reading
MAX_PATTERNS = 100  # per connection: each topic is matched against every pattern of every connection once
_MAX_MESSAGE = 64 * 1024  # bytes of one client message; clients only send small control messages
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

FeedBuilder = Callable[[bool], Mapping[str, Any]]


def _check_path(path: str, field: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or (len(path) > 1 and path.endswith("/")):
        raise ValidationError(
            f"{field} must start with '/' and not end with one, e.g. '/ws'; got {path!r}", field=field
        )
    return path


def _feeds(feeds: Mapping[str, FeedBuilder | tuple[FeedBuilder, float]] | None) -> tuple[Feed, ...]:
    built = []
    for topic, spec in (feeds or {}).items():
        validate_topic(topic)
        build, interval = spec if isinstance(spec, tuple) else (spec, 1.0)
        if not callable(build):
            raise ValidationError(f"feeds[{topic!r}] must be a function build(admin) -> dict", field="feeds")
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ValidationError(
                f"feeds[{topic!r}]: the interval must be seconds > 0, got {interval!r}", field="feeds"
            )
        built.append(Feed(topic, build, float(interval)))
    return tuple(built)


def realtime_router(
    realtime: Realtime | None = None,
    *,
    path: str = "/ws",
    sse_path: str | None = "/sse",
    public: Iterable[str] = (),
    authorize: Authorize | None = None,
    feeds: Mapping[str, FeedBuilder | tuple[FeedBuilder, float]] | None = None,
    auth: AdminAuth | None = None,
) -> APIRouter:
    """A router with the WebSocket endpoint at ``path`` and the SSE endpoint at ``sse_path`` (None: none).

    ``realtime`` defaults to the process-wide one (:func:`get_realtime`, resolved at the first
    connection). Anonymous clients may follow the topics ``public`` covers; clients with a valid token
    (``auth``, default: the ops server's, from settings) anything, unless ``authorize(identity, pattern)``
    decides instead. ``feeds`` maps local topics to ``build(admin)`` functions (or ``(build, seconds)``)
    run in a thread every second (or every ``seconds``) while someone follows the topic.
    """
    _check_path(path, "path")
    if sse_path is not None:
        _check_path(sse_path, "sse_path")
    endpoint = _Endpoint(realtime, public=tuple(public), authorize=authorize, feeds=_feeds(feeds), auth=auth)
    router = APIRouter()
    router.add_api_websocket_route(path, endpoint.websocket, name="realtime_websocket")
    if sse_path is not None:
        router.add_api_route(
            sse_path,
            endpoint.sse,
            methods=["GET"],
            name="realtime_sse",
            response_class=StreamingResponse,
            response_model=None,
            # An endless stream that OpenAPI cannot describe (and a fuzzer would wait on forever); the
            # page docs/realtime.md documents it, as it does the WebSocket.
            include_in_schema=False,
        )
    return router


class _Endpoint:
    """What both endpoints share: the realtime object, the policy and the feeds, resolved lazily."""

    def __init__(
        self,
        realtime: Realtime | None,
        *,
        public: tuple[str, ...],
        authorize: Authorize | None,
        feeds: tuple[Feed, ...],
        auth: AdminAuth | None,
    ) -> None:
        for pattern in public:
            check_pattern(pattern, "public")
        self._realtime = realtime
        self._public = public
        self._authorize = authorize
        self._auth = auth
        self._policy: Policy | None = None
        self.feeds = feeds

    @property
    def realtime(self) -> Realtime:
        if self._realtime is None:
            from buttress.realtime._provide import get_realtime  # noqa: PLC0415 - the container, on first use

            self._realtime = get_realtime()
        return self._realtime

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            auth = self._auth if self._auth is not None else AdminAuth.from_settings(get_settings())
            self._policy = Policy(auth, public=self._public, authorize=self._authorize)
        return self._policy

    def connection(self, transport: str, identity: Identity | None) -> Connection:
        settings = self.realtime.settings
        connection = Connection(
            transport=transport,
            identity=identity,
            queue_size=settings.queue_size,
            overflow=settings.overflow,
            now=self.realtime.clock.time(),
        )
        connection.feeds = self.feeds
        return connection

    async def subscribe(
        self, hub: Hub, connection: Connection, topics: list[str], last_id: object
    ) -> Position | None:
        """Add the allowed ``topics``; refuse the others with an ``error``; where to replay from, if anywhere.

        When it returns a position the connection already holds live events back, so that the replay
        (:meth:`resume`, run while the writer drains the queue) comes first.
        """
        patterns = [check_pattern(topic) for topic in topics]
        if len(set(patterns) | set(connection.patterns)) > MAX_PATTERNS:
            raise ValidationError(
                f"topics: a connection follows at most {MAX_PATTERNS} patterns; use wildcards to cover more",
                field="topics",
            )
        position = parse_id(last_id) if last_id is not None else None
        first = not connection.patterns
        if position is not None and not first:
            raise ValidationError(
                "last_id is taken with the connection's first subscription only", field="last_id"
            )
        allowed: list[str] = []
        denied: list[str] = []
        for pattern in patterns:
            (allowed if await self.policy.allows(connection.identity, pattern) else denied).append(pattern)
        if denied:
            self.realtime.telemetry.rejected["forbidden"].inc()
            message = "not allowed to follow these topics" + (
                "" if connection.identity else " without a token"
            )
            connection.offer(
                (encode_message("error", code="forbidden", topics=denied, message=message), None, None)
            )
        for pattern in allowed:
            connection.patterns[pattern] = compile_pattern(pattern)
        hub.subscriptions_changed()
        connection.offer((encode_message("subscribed", topics=sorted(connection.patterns)), None, None))
        if position is None or not allowed:
            return None
        connection.replaying = True  # before any await: live events from now on wait for the replay
        return position

    async def resume(self, hub: Hub, connection: Connection, position: Position | None) -> None:
        """Replay after ``position``; a log that cannot be read closes the connection with 1013."""
        if position is None:
            return
        try:
            await hub.resume(connection, position)
        except BackendUnavailable:
            connection.close(1013, "the event log is unreachable; reconnect with the same last_id")

    # -- WebSocket -----------------------------------------------------------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        realtime = self.realtime
        token, versioned = bearer_from_subprotocols(websocket.scope.get("subprotocols", ()))
        await websocket.accept(subprotocol=PROTOCOL if versioned else None)
        identity = None
        if token is not None:
            try:
                identity = self.policy.identify(token)
            except AdminAuthError as exc:
                realtime.telemetry.rejected["auth"].inc()
                await _close(websocket, 1008, str(exc))
                return
        if (
            identity is not None
            and identity.expires is not None
            and realtime.clock.time() >= identity.expires
        ):
            realtime.telemetry.rejected["auth"].inc()
            await _close(websocket, 1008, "the token expired")
            return
        hub = realtime.hub()
        connection = self.connection("ws", identity)
        refusal = hub.admit(connection)
        if refusal is not None:
            realtime.telemetry.rejected["limit"].inc()
            realtime.release(hub)
            await _close(websocket, 1013, refusal)
            return
        try:
            await self._serve(websocket, hub, connection)
        finally:
            hub.leave(connection)
            realtime.release(hub)

    async def _serve(self, websocket: WebSocket, hub: Hub, connection: Connection) -> None:
        await hub.ready()
        connection.offer(
            (
                encode_message(
                    "welcome",
                    connection=connection.id,
                    epoch=hub.epoch,
                    heartbeat=self.realtime.settings.heartbeat,
                ),
                None,
                None,
            )
        )
        query = websocket.query_params
        topics = query.getlist("topics")
        try:
            position = await self.subscribe(hub, connection, topics, query.get("last_id")) if topics else None
        except ValidationError as exc:
            self.realtime.telemetry.rejected["invalid"].inc()
            await _close(websocket, 1008, str(exc))
            return
        writer = asyncio.create_task(self._write(websocket, connection))
        replay = asyncio.create_task(self.resume(hub, connection, position))  # while the writer drains
        reader = asyncio.create_task(self._read(websocket, hub, connection))
        closing = asyncio.create_task(connection.closed.wait())
        try:
            await asyncio.wait({writer, reader, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, replay, reader, closing):
                task.cancel()
            await asyncio.gather(writer, replay, reader, closing, return_exceptions=True)
        request = connection.closing
        if request is not None:
            await _close(websocket, request.code, request.reason)

    async def _write(self, websocket: WebSocket, connection: Connection) -> None:
        now = self.realtime.clock.time
        delivered = _Delivered(self.realtime.telemetry, "ws")
        send = websocket.send_text
        while (batch := await connection.next_batch()) is not None:
            connection.sending_since = started = now()
            await send("\n".join([item[0] for item in batch]) if len(batch) > 1 else batch[0][0])
            connection.sending_since = None
            delivered.record(batch, started)

    async def _read(self, websocket: WebSocket, hub: Hub, connection: Connection) -> None:
        clock = self.realtime.clock
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:  # a binary frame: decoded the same way, or refused as invalid
                    text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
                connection.last_seen = clock.time()
                await self._handle(hub, connection, text)
        except WebSocketDisconnect:
            return
        except Exception:
            logger.exception("realtime: reading from a client failed; closing it")
            connection.close(1011, "the server failed reading a message")

    async def _handle(self, hub: Hub, connection: Connection, text: str) -> None:
        if len(text) > _MAX_MESSAGE:
            self.realtime.telemetry.rejected["invalid"].inc()
            connection.offer(
                (
                    encode_message(
                        "error", code="invalid", field="message", message="a message is at most 64 KiB"
                    ),
                    None,
                    None,
                )
            )
            return
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "pong":
            return
        try:
            await self._dispatch(hub, connection, kind, message if isinstance(message, dict) else {})
        except ValidationError as exc:
            self.realtime.telemetry.rejected["invalid"].inc()
            connection.offer(
                (encode_message("error", code="invalid", field=exc.field, message=str(exc)), None, None)
            )
        except BackendUnavailable:
            connection.close(1013, "the event log is unreachable; reconnect with the same last_id")

    async def _dispatch(
        self, hub: Hub, connection: Connection, kind: object, message: dict[str, Any]
    ) -> None:
        if kind == "subscribe":
            topics = message.get("topics")
            if not isinstance(topics, list) or not topics:
                raise ValidationError("subscribe needs topics: a non-empty list of patterns", field="topics")
            await self.resume(
                hub, connection, await self.subscribe(hub, connection, topics, message.get("last_id"))
            )
        elif kind == "unsubscribe":
            topics = message.get("topics")
            for topic in topics if isinstance(topics, list) else ():
                if isinstance(topic, str):
                    connection.patterns.pop(topic, None)
            hub.subscriptions_changed()
            connection.offer((encode_message("subscribed", topics=sorted(connection.patterns)), None, None))
        elif kind == "auth":
            self._authenticate(hub, connection, message.get("token"))
        else:
            raise ValidationError(
                "a message is a JSON object whose type is subscribe, unsubscribe, auth or pong", field="type"
            )

    def _authenticate(self, hub: Hub, connection: Connection, token: object) -> None:
        if connection.identity is not None:
            raise ValidationError("this connection is authenticated already", field="token")
        if connection.patterns:
            raise ValidationError("send auth before the first subscribe", field="token")
        if not isinstance(token, str) or not token:
            raise ValidationError(
                'auth needs a token: {"type": "auth", "token": "<admin token or JWT>"}', field="token"
            )
        try:
            identity = self.policy.identify(token)
        except AdminAuthError as exc:
            self.realtime.telemetry.rejected["auth"].inc()
            connection.close(1008, str(exc))
            return
        refusal = hub.identify(connection, identity)
        if refusal is not None:
            self.realtime.telemetry.rejected["limit"].inc()
            connection.close(1013, refusal)
            return
        if identity.expires is not None and self.realtime.clock.time() >= identity.expires:
            connection.close(1008, "the token expired")
            return
        connection.offer((encode_message("authenticated", subject=identity.subject), None, None))

    # -- SSE -----------------------------------------------------------------------------------------

    async def sse(
        self,
        request: Request,
        topics: Annotated[
            list[str], Query(description="Topic patterns to follow, e.g. jobs.** (repeatable).")
        ],
        last_id: Annotated[str | None, Query(description="Resume after this event id.")] = None,
        last_event_id: Annotated[
            str | None, Header(description="Resume after this id (EventSource sends it).")
        ] = None,
        authorization: Annotated[
            str | None, Header(description="Bearer <token> for protected topics.")
        ] = None,
    ) -> StreamingResponse | JSONResponse:
        realtime = self.realtime
        identity = None
        if authorization:
            try:
                identity = self.policy.identify(_bearer(authorization))
            except AdminAuthError as exc:
                realtime.telemetry.rejected["auth"].inc()
                return _problem(
                    401, "unauthorized", str(exc), {"WWW-Authenticate": 'Bearer realm="buttress"'}
                )
        resume_from = last_event_id or last_id
        try:
            patterns = [check_pattern(topic) for topic in topics]
            if resume_from is not None:
                parse_id(resume_from, field="Last-Event-ID")
        except ValidationError as exc:
            realtime.telemetry.rejected["invalid"].inc()
            return _problem(422, "validation_error", str(exc))
        for pattern in patterns:
            if not await self.policy.allows(identity, pattern):
                realtime.telemetry.rejected["forbidden"].inc()
                if identity is not None:
                    return _problem(403, "forbidden", f"not allowed to follow {pattern!r}")
                return _problem(
                    401,
                    "unauthorized",
                    f"{pattern!r} needs a token: send 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": 'Bearer realm="buttress"'},
                )
        hub = realtime.hub()
        connection = self.connection("sse", identity)
        refusal = hub.admit(connection)
        if refusal is not None:
            realtime.telemetry.rejected["limit"].inc()
            realtime.release(hub)
            return _problem(503, "overloaded", refusal, {"Retry-After": "1"})
        return StreamingResponse(
            self._stream(hub, connection, patterns, resume_from),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )

    async def _stream(
        self, hub: Hub, connection: Connection, patterns: list[str], resume_from: str | None
    ) -> AsyncIterator[str]:
        now = self.realtime.clock.time
        delivered = _Delivered(self.realtime.telemetry, "sse")
        try:
            await hub.ready()
            yield "retry: 2000\n\n"
            position = await self.subscribe(hub, connection, patterns, resume_from)
            replay = asyncio.create_task(self.resume(hub, connection, position))  # while this drains
            try:
                async for batch in connection.batches():
                    started = now()
                    yield "".join([_sse_item(item) for item in batch])
                    delivered.record(batch, started)
            finally:
                replay.cancel()
        finally:
            hub.leave(connection)
            self.realtime.release(hub)


class _Delivered:
    """A writer's sent counter and its sampled delivery times, the same for WebSocket and SSE."""

    __slots__ = ("_observe", "_sent", "_writes")

    def __init__(self, telemetry: RealtimeTelemetry, transport: str) -> None:
        self._sent = telemetry.sent[transport]
        self._observe = telemetry.delivery.observe
        self._writes = 0

    def record(self, batch: list[Item], started: float) -> None:
        """``batch`` was written from ``started`` on: count it; time the first write, then one in eight
        (a batch's first logged event is its oldest, so it waited longest)."""
        self._sent.inc(len(batch))
        self._writes += 1
        if self._writes & _SAMPLE == 1:
            oldest = _oldest(batch)
            if oldest is not None:
                self._observe(max(0.0, started - oldest))


def _oldest(batch: list[Item]) -> float | None:
    """The publication time of the first logged message of a batch (queued in order: the oldest)."""
    for _frame, _id, published in batch:
        if published is not None:
            return published
    return None


def _bearer(authorization: str) -> str:
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise AdminAuthError("send 'Authorization: Bearer <token>'")
    return credential.strip()


def _sse_item(item: Item) -> str:
    frame, entry_id, _time = item
    if frame is PING:
        return ": ping\n\n"
    if entry_id is None:
        return f"data: {frame}\n\n"
    return f"id: {entry_id}\ndata: {frame}\n\n"


def _problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _reason(text: str) -> str:
    """``text`` cut to the 123 UTF-8 bytes a close frame can carry (on a character boundary)."""
    return text.encode()[:123].decode(errors="ignore")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, _reason(reason)), _CLOSE_WAIT)
