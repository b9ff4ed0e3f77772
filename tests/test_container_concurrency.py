"""Container under concurrency: real threads released together, and many asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from buttress.container import Container, Lifetime
from buttress.errors import ContainerError

THREADS = 32


class Engine:
    pass


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine


def run_threads(target: Callable[[int], object], count: int = THREADS) -> list[object]:
    """Start ``count`` threads that call ``target(i)`` at the same moment; return results in order."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "threads are stuck: a deadlock"
    assert errors == []
    return results


def test_singleton_is_created_once_under_concurrent_resolution() -> None:
    # The factory holds the first caller until every thread has called resolve(), so all of them are
    # contending for the singleton while it is being built.
    calls: list[int] = []
    arrived = threading.Condition()
    waiting = [0]

    def make_engine() -> Engine:
        with arrived:
            calls.append(1)
            assert arrived.wait_for(lambda: waiting[0] == THREADS, timeout=10)
        return Engine()

    def resolve(index: int) -> object:
        with arrived:
            waiting[0] += 1
            arrived.notify_all()
        return container.resolve(Engine if index % 2 else Database)

    container = Container()
    container.register(Engine, make_engine)
    container.register(Database)
    results = run_threads(resolve)
    engine = container.resolve(Engine)
    assert calls == [1]
    assert all((r if isinstance(r, Engine) else r.engine) is engine for r in results)  # type: ignore[attr-defined]
    databases = [r for r in results if isinstance(r, Database)]
    assert all(d is databases[0] for d in databases)


def test_singletons_resolving_each_other_in_opposite_orders_do_not_deadlock() -> None:
    class Left:
        pass

    class Right:
        pass

    class LeftThenRight:
        def __init__(self, container: Container) -> None:
            self.parts = (container.resolve(Left), container.resolve(Right))

    class RightThenLeft:
        def __init__(self, container: Container) -> None:
            self.parts = (container.resolve(Right), container.resolve(Left))

    container = Container()
    for service in (Left, Right, LeftThenRight, RightThenLeft):
        container.register(service)
    results = run_threads(lambda i: container.resolve(LeftThenRight if i % 2 else RightThenLeft).parts)
    left, right = container.resolve(Left), container.resolve(Right)
    assert all(set(map(id, r)) == {id(left), id(right)} for r in results)  # type: ignore[call-overload]


def test_transients_from_many_threads_are_distinct() -> None:
    container = Container()
    container.register(Engine)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    results = run_threads(lambda _: container.resolve(Database))
    assert len({id(r) for r in results}) == THREADS
    assert all(r.engine is container.resolve(Engine) for r in results)  # type: ignore[attr-defined]


def test_threads_sharing_one_scope_build_its_scoped_service_once() -> None:
    calls: list[int] = []
    arrived = threading.Condition()
    waiting = [0]

    def make_engine() -> Engine:
        with arrived:
            calls.append(1)
            assert arrived.wait_for(lambda: waiting[0] == THREADS, timeout=10)
        return Engine()

    def resolve(_: int) -> object:
        with arrived:
            waiting[0] += 1
            arrived.notify_all()
        return scope.resolve(Database)

    container = Container()
    container.register(Engine, make_engine, Lifetime.SCOPED)
    container.register(Database, lifetime=Lifetime.SCOPED)
    with container.scope() as scope:
        results = run_threads(resolve)
        assert calls == [1]
        assert all(r is results[0] for r in results)


def test_scopes_in_threads_are_isolated() -> None:
    container = Container()
    container.register(Engine, lifetime=Lifetime.SCOPED)

    def request(_: int) -> tuple[Engine, Engine]:
        with container.scope() as scope:
            return container.resolve(Engine), scope.resolve(Engine)

    results = run_threads(request)
    assert all(a is b for a, b in results)  # type: ignore[misc]
    assert len({id(a) for a, _ in results}) == THREADS  # type: ignore[misc]


async def test_async_singleton_is_created_once_by_many_tasks() -> None:
    calls: list[int] = []

    async def make_engine() -> Engine:
        calls.append(1)
        for _ in range(10):
            await asyncio.sleep(0)  # let every other task reach the lock meanwhile
        return Engine()

    container = Container()
    container.register(Engine, make_engine)
    engines = await asyncio.gather(*(container.aresolve(Engine) for _ in range(50)))
    assert calls == [1]
    assert all(e is engines[0] for e in engines)
    assert container.resolve(Engine) is engines[0]  # built: sync code may read it now


async def test_async_singletons_depending_on_each_other_do_not_deadlock() -> None:
    async def make_engine() -> Engine:
        await asyncio.sleep(0)
        return Engine()

    async def make_database(engine: Engine) -> Database:
        await asyncio.sleep(0)
        return Database(engine)

    class Locator:
        def __init__(self, database: Database) -> None:
            self.database = database

    async def make_locator(container: Container) -> Locator:
        return Locator(await container.aresolve(Database))  # re-enters the creation lock

    container = Container()
    container.register(Engine, make_engine)
    container.register(Database, make_database)
    container.register(Locator, make_locator)
    locators = await asyncio.gather(*(container.aresolve(Locator) for _ in range(20)))
    assert all(loc is locators[0] for loc in locators)
    assert locators[0].database.engine is await container.aresolve(Engine)


def test_async_singletons_in_two_event_loops() -> None:
    async def make_engine() -> Engine:
        await asyncio.sleep(0)
        return Engine()

    container = Container()
    container.register(Engine, make_engine)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    with ThreadPoolExecutor(1) as pool:  # own thread: leave the main thread's event loop state alone
        first = pool.submit(asyncio.run, container.aresolve(Database)).result()
        container.close()
        second = pool.submit(asyncio.run, container.aresolve(Database)).result()  # a new loop, a new lock
    assert first.engine is not second.engine


async def test_sync_factory_with_async_dependency_via_aresolve() -> None:
    async def make_engine() -> Engine:
        return Engine()

    container = Container()
    container.register(Engine, make_engine, Lifetime.TRANSIENT)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    database = await container.aresolve(Database)
    assert isinstance(database.engine, Engine)


async def test_async_factory_resolved_synchronously_says_to_use_aresolve() -> None:
    async def make_engine() -> Engine:
        return Engine()

    container = Container()
    container.register(Engine, make_engine)
    container.register(Database)
    with pytest.raises(ContainerError) as caught:
        container.resolve(Engine)
    assert str(caught.value) == (
        "cannot build Engine synchronously: its factory make_engine() is async; use "
        "`await container.aresolve(Engine)`"
    )
    assert caught.value.error_code == "async_factory"
    with pytest.raises(ContainerError) as caught:
        container.resolve(Database)
    assert str(caught.value) == (
        "cannot build Engine synchronously: its factory make_engine() is async; use "
        "`await container.aresolve(Database)` (resolving Database -> Engine)"
    )


async def test_async_callable_object_is_detected() -> None:
    class MakeEngine:
        async def __call__(self) -> Engine:
            return Engine()

    container = Container()
    container.register(Engine, MakeEngine())
    with pytest.raises(ContainerError, match="is async; use"):
        container.resolve(Engine)
    assert isinstance(await container.aresolve(Engine), Engine)


async def test_scoped_services_in_concurrent_tasks_are_per_task_scope() -> None:
    container = Container()
    container.register(Engine, lifetime=Lifetime.SCOPED)
    started = asyncio.Event()
    entered: list[int] = []

    async def request(index: int) -> Engine:
        async with container.scope():
            entered.append(index)
            if len(entered) == 10:
                started.set()
            await started.wait()  # every task is inside its own scope at the same time
            return await container.aresolve(Engine)

    engines = await asyncio.gather(*(request(i) for i in range(10)))
    assert len({id(e) for e in engines}) == 10
