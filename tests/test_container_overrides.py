"""Container overrides for tests: direct, as a dependency, nested, and never cached into the real graph."""

from __future__ import annotations

import pytest

from buttress.container import Container, Lifetime


class Engine:
    def close(self) -> None:
        self.closed = True


class FakeEngine(Engine):
    pass


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine


class Repository:
    def __init__(self, database: Database) -> None:
        self.database = database


class Clock:
    pass


class Service:
    """A singleton that does not depend on Engine."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock


@pytest.fixture
def container() -> Container:
    container = Container()
    for service in (Engine, Database, Repository, Clock, Service):
        container.register(service)
    return container


def test_override_replaces_the_type_while_active(container: Container) -> None:
    real = container.resolve(Engine)
    fake = FakeEngine()
    with container.override(Engine, fake) as given:
        assert given is fake
        assert container.resolve(Engine) is fake
    assert container.resolve(Engine) is real


async def test_override_applies_to_aresolve_and_scopes(container: Container) -> None:
    fake = FakeEngine()
    with container.override(Engine, fake):
        assert await container.aresolve(Engine) is fake
        async with container.scope() as scope:
            assert await scope.aresolve(Engine) is fake
            assert scope.resolve(Engine) is fake


def test_override_is_injected_as_a_dependency(container: Container) -> None:
    fake = FakeEngine()
    with container.override(Engine, fake):
        assert container.resolve(Repository).database.engine is fake


def test_singleton_built_during_an_override_is_not_kept_after_it(container: Container) -> None:
    fake = FakeEngine()
    with container.override(Engine, fake):
        during = container.resolve(Database)
        assert container.resolve(Database) is during  # still a singleton while the override lasts
        assert during.engine is fake
    after = container.resolve(Database)
    assert after is not during
    assert after.engine is container.resolve(Engine)
    assert not isinstance(after.engine, FakeEngine)


def test_singleton_built_before_an_override_is_rebuilt_during_it_and_comes_back_after(
    container: Container,
) -> None:
    before = container.resolve(Repository)
    fake = FakeEngine()
    with container.override(Engine, fake):
        during = container.resolve(Repository)
        assert during is not before
        assert during.database.engine is fake
    assert container.resolve(Repository) is before


async def test_async_singleton_built_during_an_override_is_not_kept(container: Container) -> None:
    fake = FakeEngine()
    with container.override(Engine, fake):
        during = await container.aresolve(Database)
        assert during.engine is fake
        assert await container.aresolve(Database) is during
    assert (await container.aresolve(Database)).engine is not fake


def test_singletons_unrelated_to_the_override_stay_cached(container: Container) -> None:
    service = container.resolve(Service)
    with container.override(Engine, FakeEngine()):
        assert container.resolve(Service) is service
        fresh_clock = container.resolve(Clock)
    assert container.resolve(Clock) is fresh_clock


def test_singleton_taking_the_container_is_treated_as_depending_on_overrides(container: Container) -> None:
    class Locator:
        def __init__(self, container: Container) -> None:
            self.engine = container.resolve(Engine)

    container.register(Locator)
    real = container.resolve(Locator)
    fake = FakeEngine()
    with container.override(Engine, fake):
        assert container.resolve(Locator).engine is fake
    assert container.resolve(Locator) is real


def test_nested_overrides_restore_in_order(container: Container) -> None:
    real = container.resolve(Engine)
    first, second = FakeEngine(), FakeEngine()
    with container.override(Engine, first):
        assert container.resolve(Database).engine is first
        with container.override(Engine, second):
            assert container.resolve(Engine) is second
            assert container.resolve(Database).engine is second
        assert container.resolve(Engine) is first
        assert container.resolve(Database).engine is first
    assert container.resolve(Engine) is real


def test_overrides_exited_out_of_order_still_restore_correctly(container: Container) -> None:
    real = container.resolve(Engine)
    first, second = FakeEngine(), FakeEngine()
    outer = container.override(Engine, first)
    inner = container.override(Engine, second)
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    assert container.resolve(Engine) is second
    inner.__exit__(None, None, None)
    assert container.resolve(Engine) is real


def test_override_of_an_unregistered_type(container: Container) -> None:
    class Mailer:
        pass

    mailer = Mailer()
    with container.override(Mailer, mailer):
        assert container.resolve(Mailer) is mailer
    assert not container.is_registered(Mailer)


def test_override_is_restored_when_the_body_raises(container: Container) -> None:
    real = container.resolve(Engine)

    def body() -> None:
        with container.override(Engine, FakeEngine()):
            raise KeyError("boom")

    with pytest.raises(KeyError):
        body()
    assert container.resolve(Engine) is real


def test_override_instance_is_not_closed_but_singletons_built_with_it_are() -> None:
    closed: list[str] = []

    class Pool:
        def __init__(self, engine: Engine) -> None:
            self.engine = engine

        def close(self) -> None:
            closed.append("pool")

    container = Container()
    container.register(Engine)
    container.register(Pool)
    fake = FakeEngine()
    with container.override(Engine, fake):
        container.resolve(Pool)
    container.close()
    assert closed == ["pool"]
    assert not hasattr(fake, "closed")


def test_transient_depending_on_override(container: Container) -> None:
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    fake = FakeEngine()
    with container.override(Engine, fake):
        assert container.resolve(Database).engine is fake
    assert container.resolve(Database).engine is not fake


def test_singleton_with_an_unregistered_optional_dependency_stays_cached(container: Container) -> None:
    class Mailer:
        pass

    class Notifier:
        def __init__(self, clock: Clock, mailer: Mailer | None = None) -> None:
            self.mailer = mailer

    container.register(Notifier)
    notifier = container.resolve(Notifier)
    with container.override(Engine, FakeEngine()):
        assert container.resolve(Notifier) is notifier
