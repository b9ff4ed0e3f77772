"""Container: registration, auto-wiring from type hints, error messages, the default container."""

from __future__ import annotations

import functools
import inspect
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Protocol

import pytest

import buttress.container as container_module
from buttress.container import Container, Lifetime, get_container, reset_container, set_container
from buttress.errors import (
    ContainerError,
    DependencyCycle,
    ScopeRequired,
    ServiceNotRegistered,
    ValidationError,
)


class Engine:
    pass


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine


def make_database(engine: Engine) -> Database:
    return Database(engine)


class Repository:
    def __init__(self, database: Database) -> None:
        self.database = database


@dataclass
class Settings:
    url: str = "sqlite://"


class RequestContext:
    pass


X_SETTINGS = Settings("x")
DEFAULT_SETTINGS = Settings("default")


class A:
    def __init__(self, b: B) -> None:
        self.b = b


class B:
    def __init__(self, c: C) -> None:
        self.c = c


class C:
    def __init__(self, a: A) -> None:
        self.a = a


# -- registration and lifetimes --------------------------------------------------------------------


def test_singleton_is_built_once_by_its_constructor() -> None:
    container = Container()
    container.register(Engine)
    first = container.resolve(Engine)
    assert isinstance(first, Engine)
    assert container.resolve(Engine) is first


def test_transient_is_built_on_every_resolve() -> None:
    container = Container()
    container.register(Engine, lifetime=Lifetime.TRANSIENT)
    assert container.resolve(Engine) is not container.resolve(Engine)


def test_factory_function_is_auto_wired_from_its_hints() -> None:
    container = Container()
    container.register(Engine)
    container.register(Database, make_database)
    database = container.resolve(Database)
    assert database.engine is container.resolve(Engine)


def test_constructor_is_auto_wired_through_several_levels() -> None:
    container = Container()
    container.register(Engine)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    container.register(Repository, lifetime=Lifetime.TRANSIENT)
    first, second = container.resolve(Repository), container.resolve(Repository)
    assert first.database is not second.database
    assert first.database.engine is second.database.engine


def test_registering_again_replaces_the_registration_and_forgets_the_built_singleton() -> None:
    container = Container()
    container.register(Engine)
    old = container.resolve(Engine)
    replacement = Engine()
    container.register(Engine, lambda: replacement)
    assert container.resolve(Engine) is replacement
    assert container.resolve(Engine) is not old


def test_register_instance_returns_that_instance_and_is_never_closed_by_the_container() -> None:
    closed: list[str] = []

    class Pool:
        def close(self) -> None:
            closed.append("pool")

    container = Container()
    pool = Pool()
    container.register_instance(Pool, pool)
    assert container.resolve(Pool) is pool
    container.close()
    assert closed == []
    assert container.resolve(Pool) is pool


def test_register_instance_is_injected_as_a_dependency() -> None:
    container = Container()
    engine = Engine()
    container.register_instance(Engine, engine)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    assert container.resolve(Database).engine is engine


def test_is_registered() -> None:
    container = Container()
    container.register(Engine)
    assert container.is_registered(Engine)
    assert not container.is_registered(Database)
    with container.override(Database, Database(Engine())):
        assert container.is_registered(Database)


def test_factory_that_is_not_callable_is_rejected_naming_the_field() -> None:
    container = Container()
    with pytest.raises(ValidationError) as caught:
        container.register(Engine, Engine())  # type: ignore[arg-type]
    assert caught.value.field == "factory"
    assert str(caught.value).startswith(
        "factory must be callable (a class or a function returning Engine), got Engine <"
    )
    assert str(caught.value).endswith("; use register_instance() for a ready object")


def test_lifetime_that_is_not_a_lifetime_is_rejected_naming_the_field() -> None:
    container = Container()
    with pytest.raises(ValidationError) as caught:
        container.register(Engine, lifetime="singleton")  # type: ignore[arg-type]
    assert caught.value.field == "lifetime"
    assert str(caught.value) == (
        "lifetime must be a Lifetime, got 'singleton'; pass Lifetime.SINGLETON, Lifetime.TRANSIENT or "
        "Lifetime.SCOPED"
    )


class Notifier(ABC):
    @abstractmethod
    def send(self) -> None: ...


class Greeter(Protocol):
    def greet(self) -> str: ...


@pytest.mark.parametrize("abstract", [Notifier, Greeter])
def test_abstract_type_without_a_factory_is_rejected(abstract: type) -> None:
    container = Container()
    with pytest.raises(ValidationError) as caught:
        container.register(abstract)
    name = abstract.__name__
    assert caught.value.field == "factory"
    assert str(caught.value) == (
        f"{name} is abstract and cannot be built by its constructor; pass a factory: "
        f"container.register({name}, make_{name.lower()})"
    )


def test_abstract_type_with_a_factory_resolves() -> None:
    class Email(Notifier):
        def send(self) -> None:
            return None

    container = Container()
    container.register(Notifier, Email)
    assert isinstance(container.resolve(Notifier), Email)


# -- auto-wiring details -------------------------------------------------------------------------


def test_parameter_with_default_uses_the_default_when_its_type_is_not_registered() -> None:
    def make(engine: Engine, timeout: float = 2.5, settings: Settings = X_SETTINGS) -> tuple[object, ...]:
        return engine, timeout, settings

    container = Container()
    container.register(Engine)
    container.register(tuple, make)
    engine, timeout, settings = container.resolve(tuple)
    assert engine is container.resolve(Engine)
    assert timeout == 2.5
    assert settings == Settings("x")


def test_parameter_with_default_is_injected_when_its_type_is_registered() -> None:
    def make(settings: Settings = DEFAULT_SETTINGS) -> list[Settings]:
        return [settings]

    container = Container()
    container.register(Settings, lambda: Settings("registered"))
    container.register(list, make)
    assert container.resolve(list) == [Settings("registered")]


@pytest.mark.parametrize("style", ["optional", "union", "union-first"])
def test_optional_parameter_gets_none_when_unregistered_and_the_service_when_registered(style: str) -> None:
    def optional(engine: Optional[Engine] = None) -> list[object]:  # noqa: UP045 - the old spelling on purpose
        return [engine]

    def union(engine: Engine | None = None) -> list[object]:
        return [engine]

    def union_first(engine: None | Engine = None) -> list[object]:  # noqa: RUF036 - on purpose
        return [engine]

    factory = {"optional": optional, "union": union, "union-first": union_first}[style]
    container = Container()
    container.register(list, factory, Lifetime.TRANSIENT)
    assert container.resolve(list) == [None]
    container.register(Engine)
    assert container.resolve(list) == [container.resolve(Engine)]


def test_optional_parameter_without_default_gets_none_when_unregistered() -> None:
    def make(engine: Engine | None) -> list[object]:
        return [engine]

    container = Container()
    container.register(list, make)
    assert container.resolve(list) == [None]


def test_parameter_annotated_container_receives_the_container() -> None:
    def make(container: Container) -> list[object]:
        return [container, container.resolve(Engine)]

    container = Container()
    container.register(Engine)
    container.register(list, make)
    assert container.resolve(list) == [container, container.resolve(Engine)]


def test_unannotated_parameter_with_default_uses_the_default() -> None:
    def make(engine: Engine, retries=3) -> list[object]:  # type: ignore[no-untyped-def]
        return [engine, retries]

    container = Container()
    container.register(Engine)
    container.register(list, make)
    assert container.resolve(list) == [container.resolve(Engine), 3]


def test_positional_only_and_variadic_parameters() -> None:
    def make(
        engine: Engine, limit: int = 5, /, *args: object, database: Database, **kwargs: object
    ) -> list[object]:
        return [engine, limit, args, database, kwargs]

    container = Container()
    container.register(Engine)
    container.register(Database)
    container.register(list, make)
    assert container.resolve(list) == [container.resolve(Engine), 5, (), container.resolve(Database), {}]


def test_dataclass_fields_are_wired() -> None:
    @dataclass
    class Service:
        engine: Engine
        settings: Settings

    container = Container()
    container.register(Engine)
    container.register(Settings)
    container.register(Service)
    service = container.resolve(Service)
    assert service.engine is container.resolve(Engine)
    assert service.settings == Settings()


def test_classes_defined_in_a_function_resolve_through_registered_names() -> None:
    # With ``from __future__ import annotations`` the hint "Local" is a string the module cannot see.
    class Local:
        pass

    class UsesLocal:
        def __init__(self, local: Local, engine: Engine) -> None:
            self.local = local
            self.engine = engine

    container = Container()
    container.register(Local)
    container.register(Engine)
    container.register(UsesLocal)
    assert container.resolve(UsesLocal).local is container.resolve(Local)


def test_hint_that_cannot_be_evaluated_says_which_factory_and_how_to_fix() -> None:
    class Hidden:
        pass

    def make_thing(hidden: Hidden) -> list[object]:
        return [hidden]

    container = Container()
    container.register(list, make_thing)
    with pytest.raises(ContainerError) as caught:
        container.resolve(list)
    assert str(caught.value) == (
        "cannot build list: parameter 'hidden' of make_thing() has the type hint 'Hidden', which cannot "
        "be evaluated, and no default; import that type where make_thing is defined (or register it) or "
        "give it a default"
    )
    assert caught.value.error_code == "parameter_not_injectable"
    assert caught.value.context == {"service": "list", "parameter": "hidden", "factory": "make_thing"}


def test_hint_that_cannot_be_evaluated_is_fine_when_the_parameter_has_a_default() -> None:
    class Hidden:
        pass

    class Local:
        pass

    def make_thing(local: Local, hidden: Hidden | None = None) -> list[object]:
        return [local, hidden]

    container = Container()
    container.register(Local)
    container.register(list, make_thing)
    assert container.resolve(list) == [container.resolve(Local), None]


def test_callable_object_factory_is_wired_from_its_call_method() -> None:
    class Factory:
        def __call__(self, engine: Engine) -> Database:
            return Database(engine)

    container = Container()
    container.register(Engine)
    container.register(Database, Factory())
    assert container.resolve(Database).engine is container.resolve(Engine)


def test_partial_factory_is_wired_from_its_remaining_parameters() -> None:
    def build(prefix: str, engine: Engine) -> list[object]:
        return [prefix, engine]

    container = Container()
    container.register(Engine)
    container.register(list, functools.partial(build, "db"))
    assert container.resolve(list) == ["db", container.resolve(Engine)]


def test_builtin_without_a_signature_is_called_without_arguments() -> None:
    container = Container()
    container.register(dict, lifetime=Lifetime.TRANSIENT)
    assert container.resolve(dict) == {}


def test_wiring_plan_is_read_once_per_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = inspect.signature

    def counting(obj: object, *args: object, **kwargs: object) -> inspect.Signature:
        calls.append(obj)
        return real(obj)  # type: ignore[arg-type]

    monkeypatch.setattr(container_module.inspect, "signature", counting)
    container = Container()
    container.register(Engine, lifetime=Lifetime.TRANSIENT)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    for _ in range(5):
        container.resolve(Database)
    assert calls == [Database, Engine]


async def test_aresolve_wires_like_resolve() -> None:
    def make(
        engine: Engine, limit: int = 5, /, settings: Settings | None = None, *, container: Container
    ) -> list[object]:
        return [engine, limit, settings, container]

    container = Container()
    container.register(Engine)
    container.register(list, make, Lifetime.TRANSIENT)
    assert await container.aresolve(list) == [container.resolve(Engine), 5, None, container]


def test_union_of_several_types_is_not_injected_and_uses_its_default() -> None:
    def make(thing: Engine | Database | None = None) -> list[object]:
        return [thing]

    container = Container()
    container.register(Engine)
    container.register(list, make)
    assert container.resolve(list) == [None]


# -- errors ----------------------------------------------------------------------------------------


def test_unregistered_type_resolved_directly() -> None:
    container = Container()
    with pytest.raises(ServiceNotRegistered) as caught:
        container.resolve(Engine)
    assert str(caught.value) == "Engine is not registered; register it with container.register(Engine, ...)"
    assert caught.value.context == {"service": "Engine"}
    assert caught.value.error_code == "service_not_registered"


async def test_unregistered_type_resolved_directly_async() -> None:
    container = Container()
    with pytest.raises(ServiceNotRegistered, match=r"^Engine is not registered; register it with"):
        await container.aresolve(Engine)


def test_unregistered_type_needed_by_a_parameter_names_the_parameter_and_the_factory() -> None:
    container = Container()
    container.register(Database, make_database)
    with pytest.raises(ServiceNotRegistered) as caught:
        container.resolve(Database)
    assert str(caught.value) == (
        "cannot build Database: parameter 'engine' of make_database() needs Engine, which is not "
        "registered; register it with container.register(Engine, ...) or give the parameter a default"
    )
    assert caught.value.context == {
        "service": "Database",
        "parameter": "engine",
        "factory": "make_database",
        "needs": "Engine",
    }


def test_unregistered_type_deep_in_the_graph_shows_the_path() -> None:
    container = Container()
    container.register(Repository)
    container.register(Database)
    with pytest.raises(ServiceNotRegistered) as caught:
        container.resolve(Repository)
    assert str(caught.value) == (
        "cannot build Database: parameter 'engine' of Database() needs Engine, which is not registered; "
        "register it with container.register(Engine, ...) or give the parameter a default "
        "(resolving Repository -> Database)"
    )


async def test_unregistered_parameter_async() -> None:
    container = Container()
    container.register(Database, make_database)
    with pytest.raises(ServiceNotRegistered, match=r"parameter 'engine' of make_database\(\) needs Engine"):
        await container.aresolve(Database)


def test_parameter_without_hint_and_default_names_parameter_factory_and_fix() -> None:
    def make_database(engine) -> Database:  # type: ignore[no-untyped-def]
        return Database(engine)

    container = Container()
    container.register(Database, make_database)
    with pytest.raises(ContainerError) as caught:
        container.resolve(Database)
    assert str(caught.value) == (
        "cannot build Database: parameter 'engine' of make_database() has no type hint and no default; "
        "annotate it with the type to inject (engine: SomeService) or give it a default"
    )
    assert caught.value.error_code == "parameter_not_injectable"
    assert caught.value.context == {"service": "Database", "parameter": "engine", "factory": "make_database"}


def test_cycle_names_its_members_in_order() -> None:
    container = Container()
    for service in (A, B, C):
        container.register(service, lifetime=Lifetime.TRANSIENT)
    with pytest.raises(DependencyCycle) as caught:
        container.resolve(A)
    assert str(caught.value) == (
        "dependency cycle: A -> B -> C -> A; break it by injecting the Container into one of them and "
        "resolving the other lazily"
    )
    assert caught.value.context == {"cycle": ["A", "B", "C", "A"]}


def test_cycle_between_singletons_entered_midway() -> None:
    class Root:
        def __init__(self, b: B) -> None:
            self.b = b

    container = Container()
    for service in (Root, A, B, C):
        container.register(service)
    with pytest.raises(DependencyCycle) as caught:
        container.resolve(Root)
    assert caught.value.context == {"cycle": ["B", "C", "A", "B"]}
    assert str(caught.value).startswith("dependency cycle: B -> C -> A -> B;")


async def test_cycle_async() -> None:
    container = Container()
    for service in (A, B, C):
        container.register(service, lifetime=Lifetime.SCOPED)
    async with container.scope():
        with pytest.raises(DependencyCycle, match=r"^dependency cycle: A -> B -> C -> A;"):
            await container.aresolve(A)


def test_scoped_service_outside_a_scope() -> None:
    container = Container()
    container.register(RequestContext, lifetime=Lifetime.SCOPED)
    with pytest.raises(ScopeRequired) as caught:
        container.resolve(RequestContext)
    assert str(caught.value) == (
        "RequestContext is SCOPED and was resolved outside a scope; resolve it inside "
        "`with container.scope():` (or `async with container.scope():`)"
    )
    assert caught.value.error_code == "scope_required"


def test_scoped_dependency_outside_a_scope_shows_the_path() -> None:
    class Handler:
        def __init__(self, context: RequestContext) -> None:
            self.context = context

    container = Container()
    container.register(RequestContext, lifetime=Lifetime.SCOPED)
    container.register(Handler, lifetime=Lifetime.TRANSIENT)
    with pytest.raises(ScopeRequired) as caught:
        container.resolve(Handler)
    assert str(caught.value).endswith("(resolving Handler -> RequestContext)")


def test_singleton_depending_on_scoped_is_a_captive_dependency() -> None:
    class Cache:
        def __init__(self, context: RequestContext) -> None:
            self.context = context

    container = Container()
    container.register(RequestContext, lifetime=Lifetime.SCOPED)
    container.register(Cache)
    with container.scope(), pytest.raises(ContainerError) as caught:
        container.resolve(Cache)
    assert str(caught.value) == (
        "captive dependency: Cache is a SINGLETON but depends on RequestContext, which is SCOPED "
        "(Cache -> RequestContext); the singleton would keep one scope's RequestContext forever. Make "
        "Cache SCOPED or TRANSIENT, or inject the Container and resolve RequestContext per call"
    )
    assert caught.value.error_code == "captive_dependency"
    assert caught.value.context == {
        "service": "Cache",
        "scoped": "RequestContext",
        "path": ["Cache", "RequestContext"],
    }


async def test_captive_dependency_through_a_transient_is_caught_too() -> None:
    class Helper:
        def __init__(self, context: RequestContext) -> None:
            self.context = context

    class Cache:
        def __init__(self, helper: Helper) -> None:
            self.helper = helper

    container = Container()
    container.register(RequestContext, lifetime=Lifetime.SCOPED)
    container.register(Helper, lifetime=Lifetime.TRANSIENT)
    container.register(Cache)
    with pytest.raises(ContainerError, match=r"\(Cache -> Helper -> RequestContext\)"):
        container.resolve(Cache)  # outside a scope: still reported as captive, the real bug
    async with container.scope():
        with pytest.raises(ContainerError, match=r"^captive dependency: Cache is a SINGLETON"):
            await container.aresolve(Cache)


def test_scoped_depending_on_singleton_and_transient_is_fine() -> None:
    class Handler:
        def __init__(self, engine: Engine, database: Database) -> None:
            self.engine = engine
            self.database = database

    container = Container()
    container.register(Engine)
    container.register(Database, lifetime=Lifetime.TRANSIENT)
    container.register(Handler, lifetime=Lifetime.SCOPED)
    with container.scope() as scope:
        handler = scope.resolve(Handler)
    assert handler.engine is container.resolve(Engine)


# -- the default container -------------------------------------------------------------------------


@pytest.fixture
def fresh_default() -> object:
    reset_container()
    yield None
    reset_container()


@pytest.mark.usefixtures("fresh_default")
def test_get_container_is_created_lazily_once_even_from_many_threads() -> None:
    barrier = threading.Barrier(16)
    seen: list[Container] = []

    def grab() -> None:
        barrier.wait()
        seen.append(get_container())

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert all(c is seen[0] for c in seen)
    assert get_container() is seen[0]
    assert not get_container().is_registered(Engine)


@pytest.mark.usefixtures("fresh_default")
def test_set_and_reset_container() -> None:
    mine = Container()
    set_container(mine)
    assert get_container() is mine
    reset_container()
    assert get_container() is not mine


def test_public_names_are_sorted() -> None:
    assert container_module.__all__ == sorted(container_module.__all__)
    assert {"Container", "Lifetime", "Scope", "get_container"} <= set(container_module.__all__)


# -- replace() and reset(): what the set_* and reset_* functions stand on -------------------------------


class Closable:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_replace_adopts_the_instance_and_hands_the_previous_one_back() -> None:
    container = Container()
    container.register(Closable)
    built = container.resolve(Closable)
    mine = Closable()
    assert container.peek(Closable) is built
    assert container.replace(Closable, mine) is built
    assert container.resolve(Closable) is mine
    assert container.replace(Closable, None) is mine
    fresh = container.resolve(Closable)
    assert fresh is not built
    container.close()
    assert (built.closed, mine.closed, fresh.closed) == (0, 0, 1)  # the handed-back ones are the caller's


def test_reset_closes_an_adopted_or_built_instance_and_keeps_the_registration() -> None:
    container = Container()
    container.register(Closable)
    built = container.resolve(Closable)
    container.reset(Closable)
    assert built.closed == 1
    mine = Closable()
    assert container.replace(Closable, mine) is None  # nothing built since the reset
    container.reset(Closable)
    assert mine.closed == 1
    assert container.resolve(Closable) not in (built, mine)


def test_reset_leaves_registered_instances_and_overrides_alone() -> None:
    container = Container()
    given = Closable()
    container.register_instance(Closable, given)
    container.reset(Closable)
    assert given.closed == 0
    assert container.resolve(Closable) is given
    other = Closable()
    with container.override(Closable, other):
        container.reset(Closable)
        assert container.resolve(Closable) is other
    assert other.closed == 0


def test_close_forgets_adopted_instances_and_closes_each_once() -> None:
    container = Container()
    container.register(Closable)
    built = container.resolve(Closable)
    assert container.replace(Closable, built) is built  # handed back, then adopted again
    container.close()
    assert built.closed == 1
    assert container.peek(Closable) is None
    assert container.resolve(Closable) is not built


def test_peek_never_builds() -> None:
    container = Container()
    container.register(Closable)
    assert container.peek(Closable) is None
    assert container.peek(Engine) is None  # not even registered
    assert container._singletons == {}
