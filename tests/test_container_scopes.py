"""Container scopes and closing: per-scope instances, the current scope, close order and close errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator

import pytest

from buttress.container import Container, Lifetime, Scope, current_scope
from buttress.errors import ContainerError, ScopeRequired


class Log(list[str]):
    """What got closed, in order; injected into the resources below by the container itself."""


@pytest.fixture
def log() -> Log:
    return Log()


def container_with(log: Log, *services: type, lifetime: Lifetime = Lifetime.SCOPED) -> Container:
    container = Container()
    container.register_instance(Log, log)
    for service in services:
        container.register(service, lifetime=lifetime)
    return container


class Session:
    pass


class Engine:
    pass


class Resource:
    def __init__(self, log: Log) -> None:
        self.log = log

    def close(self) -> None:
        self.log.append(f"close:{type(self).__name__}")


class Conn(Resource):
    pass


class Tmp(Resource):
    pass


class One(Resource):
    pass


class Two(Resource):
    pass


class Three(Resource):
    pass


class Failing(Resource):
    def close(self) -> None:
        self.log.append(f"fail:{type(self).__name__}")
        raise RuntimeError(f"{type(self).__name__} failed to close")


class Bad1(Failing):
    pass


class Bad2(Failing):
    pass


class Client:
    """Has only ``aclose()``, like many async clients."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.log.append("aclose:Client")


class Tx(Resource):
    def __init__(self, log: Log, conn: Conn) -> None:
        super().__init__(log)
        self.conn = conn


def run_scope(container: Container, *services: type, body_error: Exception | None = None) -> None:
    with container.scope() as scope:
        for service in services:
            scope.resolve(service)
        if body_error is not None:
            raise body_error


async def arun_scope(container: Container, *services: type) -> None:
    async with container.scope() as scope:
        for service in services:
            await scope.aresolve(service)


def test_scoped_is_one_per_scope() -> None:
    container = Container()
    container.register(Session, lifetime=Lifetime.SCOPED)
    with container.scope() as first:
        one = first.resolve(Session)
        assert first.resolve(Session) is one
        assert container.resolve(Session) is one
    with container.scope() as second:
        assert second.resolve(Session) is not one
    assert first.container is container


def test_container_resolve_finds_the_current_scope_deep_in_the_call_stack() -> None:
    container = Container()
    container.register(Session, lifetime=Lifetime.SCOPED)

    def deep_in_a_request() -> Session:
        return container.resolve(Session)

    with container.scope() as scope:
        assert deep_in_a_request() is scope.resolve(Session)
    with pytest.raises(ScopeRequired):
        deep_in_a_request()


def test_nested_scopes_are_independent_and_the_outer_one_is_current_again_after_the_inner() -> None:
    container = Container()
    container.register(Session, lifetime=Lifetime.SCOPED)
    with container.scope():
        outer_session = container.resolve(Session)
        with container.scope() as inner:
            assert container.resolve(Session) is inner.resolve(Session)
            assert inner.resolve(Session) is not outer_session
        assert container.resolve(Session) is outer_session


def test_scopes_of_two_containers_nest_without_confusion() -> None:
    first, second = Container(), Container()
    first.register(Session, lifetime=Lifetime.SCOPED)
    second.register(Session, lifetime=Lifetime.SCOPED)
    with first.scope() as first_scope, second.scope() as second_scope:
        assert first.resolve(Session) is first_scope.resolve(Session)
        assert second.resolve(Session) is second_scope.resolve(Session)
        assert first.resolve(Session) is not second.resolve(Session)


async def test_scoped_async_factory_and_current_scope_per_task() -> None:
    container = Container()
    made: list[Session] = []

    async def make_session() -> Session:
        await asyncio.sleep(0)
        made.append(Session())
        return made[-1]

    container.register(Session, make_session, Lifetime.SCOPED)

    async def request() -> tuple[Session, Session]:
        async with container.scope() as scope:
            await asyncio.sleep(0)
            return await container.aresolve(Session), await scope.aresolve(Session)

    results = await asyncio.gather(*(request() for _ in range(10)))
    assert all(a is b for a, b in results)
    assert len({id(a) for a, _ in results}) == 10
    assert len(made) == 10


async def test_concurrent_tasks_sharing_a_scope_build_the_scoped_service_once() -> None:
    container = Container()
    calls: list[int] = []

    async def make_session() -> Session:
        calls.append(1)
        for _ in range(5):
            await asyncio.sleep(0)
        return Session()

    container.register(Session, make_session, Lifetime.SCOPED)
    async with container.scope() as scope:
        sessions = await asyncio.gather(*(scope.aresolve(Session) for _ in range(20)))
    assert calls == [1]
    assert all(s is sessions[0] for s in sessions)


def test_scope_closes_scoped_and_transient_in_reverse_creation_order(log: Log) -> None:
    container = container_with(log, Conn, Tx)
    container.register(Tmp, lifetime=Lifetime.TRANSIENT)
    with container.scope() as scope:
        scope.resolve(Tx)
        container.resolve(Tmp)
        container.resolve(Tmp)
        assert log == []
    assert log == ["close:Tmp", "close:Tmp", "close:Tx", "close:Conn"]


async def test_async_scope_closes_transients_resolved_in_it(log: Log) -> None:
    container = container_with(log, Conn)
    container.register(Tmp, lifetime=Lifetime.TRANSIENT)
    container.register(Engine)
    async with container.scope() as scope:
        await container.aresolve(Tmp)
        await scope.aresolve(Conn)
        assert scope.resolve(Engine) is container.resolve(Engine)
    assert log == ["close:Conn", "close:Tmp"]


def test_sync_exit_refuses_a_close_returning_a_non_coroutine_awaitable() -> None:
    class Pending:
        def __await__(self) -> Generator[None, None, None]:
            yield None

    class Handle:
        def close(self) -> Pending:
            return Pending()

    container = container_with(Log(), Handle)
    with pytest.raises(ContainerError, match=r"^Handle can only be closed asynchronously"):
        run_scope(container, Handle)


def test_transient_outside_a_scope_is_not_tracked(log: Log) -> None:
    container = container_with(log, Tmp, lifetime=Lifetime.TRANSIENT)
    container.resolve(Tmp)
    container.close()
    with container.scope():
        pass
    assert log == []


def test_transient_dependency_of_a_singleton_is_not_closed_by_the_scope(log: Log) -> None:
    class Holder:
        def __init__(self, tmp: Tmp) -> None:
            self.tmp = tmp

    container = container_with(log, Tmp, lifetime=Lifetime.TRANSIENT)
    container.register(Holder)
    with container.scope():
        container.resolve(Holder)
    assert log == []


def test_closing_continues_past_failures_and_raises_the_first_with_notes(log: Log) -> None:
    services = (One, Bad1, Two, Bad2, Three)
    container = container_with(log, *services)
    with pytest.raises(RuntimeError) as caught:
        run_scope(container, *services)
    assert log == ["close:Three", "fail:Bad2", "close:Two", "fail:Bad1", "close:One"]
    assert str(caught.value) == "Bad2 failed to close"
    assert caught.value.__notes__ == ["also failed while closing: RuntimeError: Bad1 failed to close"]


def test_sync_exit_refuses_to_leak_an_aclose_only_resource(log: Log) -> None:
    container = container_with(log, Conn, Client)
    with pytest.raises(ContainerError) as caught:
        run_scope(container, Conn, Client)
    assert str(caught.value) == (
        "Client can only be closed asynchronously (aclose() or an async close()); exit the scope with "
        "`async with container.scope():` or close the container with `await container.aclose()`"
    )
    assert caught.value.error_code == "async_close_required"
    assert caught.value.context == {"service": "Client"}
    assert log == ["close:Conn"]  # the others are still closed


def test_sync_exit_refuses_async_close_methods_without_a_never_awaited_warning() -> None:
    class AsyncClose:
        async def close(self) -> None:
            return None

    class ReturnsAwaitable:
        def close(self) -> Awaitable[None]:
            return asyncio.sleep(0)

    container = container_with(Log(), AsyncClose, ReturnsAwaitable)
    with pytest.raises(
        ContainerError, match=r"^ReturnsAwaitable can only be closed asynchronously"
    ) as caught:
        run_scope(container, AsyncClose, ReturnsAwaitable)
    assert caught.value.__notes__ == [
        (
            "also failed while closing: ContainerError: AsyncClose can only be closed asynchronously "
            "(aclose() or an async close()); exit the scope with `async with container.scope():` or close "
            "the container with `await container.aclose()`"
        )
    ]


async def test_async_exit_awaits_aclose_and_async_close_and_calls_sync_close(log: Log) -> None:
    class Pool:
        def __init__(self, log: Log) -> None:
            self.log = log

        async def close(self) -> None:
            await asyncio.sleep(0)
            self.log.append("close:Pool")

    container = container_with(log, Conn, Client, Pool)
    await arun_scope(container, Conn, Client, Pool)
    assert log == ["close:Pool", "aclose:Client", "close:Conn"]


async def test_async_exit_continues_past_failures(log: Log) -> None:
    container = container_with(log, Client, Bad1)
    with pytest.raises(RuntimeError, match="Bad1 failed to close"):
        await arun_scope(container, Client, Bad1)
    assert log == ["fail:Bad1", "aclose:Client"]


def test_body_error_is_kept_as_context_when_closing_also_fails(log: Log) -> None:
    container = container_with(log, Bad1)
    with pytest.raises(RuntimeError, match="Bad1 failed to close") as caught:
        run_scope(container, Bad1, body_error=KeyError("body"))
    assert isinstance(caught.value.__context__, KeyError)


def test_body_error_propagates_when_closing_succeeds(log: Log) -> None:
    container = container_with(log, Conn)
    with pytest.raises(KeyError, match="body"):
        run_scope(container, Conn, body_error=KeyError("body"))
    assert log == ["close:Conn"]


def test_closed_scope_refuses_to_build_scoped_services() -> None:
    container = Container()
    container.register(Session, lifetime=Lifetime.SCOPED)
    with container.scope() as scope:
        pass
    with pytest.raises(ContainerError) as caught:
        scope.resolve(Session)
    assert str(caught.value) == "cannot resolve Session: its scope is already closed"
    scope.close()  # closing again is harmless


async def test_scope_without_enter_resolves_explicitly_and_closes(log: Log) -> None:
    container = container_with(log, Conn)
    scope = Scope(container)
    await scope.aresolve(Conn)
    await scope.aclose()
    assert log == ["close:Conn"]


def test_container_close_closes_singletons_in_reverse_order_and_starts_over(log: Log) -> None:
    class Both:
        def __init__(self, two: Two, one: One) -> None:
            self.parts = (two, one)

    container = container_with(log, One, Two, Both, Engine, lifetime=Lifetime.SINGLETON)
    old = container.resolve(Both)
    engine = container.resolve(Engine)
    container.close()
    assert log == ["close:One", "close:Two"]
    assert container.resolve(Both) is not old
    assert container.resolve(Engine) is not engine
    assert container.resolve(Log) is log


async def test_container_aclose_and_context_managers(log: Log) -> None:
    async with container_with(log, Conn, Client, lifetime=Lifetime.SINGLETON) as container:
        await container.aresolve(Conn)
        await container.aresolve(Client)
    assert log == ["aclose:Client", "close:Conn"]
    with container_with(log, Conn, lifetime=Lifetime.SINGLETON) as other:
        other.resolve(Conn)
    assert log[-1] == "close:Conn"


def test_container_close_refuses_to_leak_aclose_only_singletons(log: Log) -> None:
    container = container_with(log, Client, lifetime=Lifetime.SINGLETON)
    container.resolve(Client)
    with pytest.raises(ContainerError) as caught:
        container.close()
    assert str(caught.value).startswith("Client can only be closed asynchronously")
    assert str(caught.value).endswith("or close the container with `await container.aclose()`")


@pytest.mark.parametrize("enter", ["sync", "async"])
async def test_scope_entered_either_way_becomes_current(enter: str) -> None:
    container = Container()
    container.register(Session, lifetime=Lifetime.SCOPED)
    run: Callable[[], Awaitable[tuple[Session, Session]]]

    async def run_async() -> tuple[Session, Session]:
        async with container.scope() as scope:
            return container.resolve(Session), scope.resolve(Session)

    async def run_sync() -> tuple[Session, Session]:
        with container.scope() as scope:
            return await container.aresolve(Session), await scope.aresolve(Session)

    run = run_sync if enter == "sync" else run_async
    one, two = await run()
    assert one is two


def test_current_scope_is_the_innermost_scope_entered_in_this_context() -> None:
    container = Container()
    assert current_scope() is None
    with container.scope() as outer:
        assert current_scope() is outer
        with Container().scope() as inner:
            assert current_scope() is inner
        assert current_scope() is outer

        async def elsewhere() -> object:
            return current_scope()

        assert asyncio.run(elsewhere()) is outer  # a copied context carries it
    assert current_scope() is None


def test_scope_local_state_is_made_once_per_scope_and_dropped_with_it() -> None:
    container = Container()
    made: list[object] = []

    def factory() -> list[int]:
        made.append(object())
        return []

    with container.scope() as first:
        first.local("counts", factory).append(1)
        first.local("counts", factory).append(2)
        assert first.local("counts", factory) == [1, 2]
    with container.scope() as second:
        assert second.local("counts", factory) == []
    assert len(made) == 2
