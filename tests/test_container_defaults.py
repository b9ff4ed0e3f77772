"""The process-wide container owns buttress's services: built lazily, reset (and closed) as one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.cache import Cache, build_cache, get_cache, reset_cache, set_cache
from buttress.clock import SYSTEM_CLOCK, Clock, FakeClock
from buttress.composition import health_registry, register_defaults
from buttress.config import Settings, get_settings, load_settings, reset_settings
from buttress.container import Container, get_container, reset_container, set_container
from buttress.events import EventBus, get_event_bus, reset_event_bus, set_event_bus
from buttress.http import (
    AsyncHttpClient,
    HttpClient,
    get_async_http_client,
    get_http_client,
    get_http_policies,
)
from buttress.http._defaults import HttpDefaults
from buttress.observe.errors import ErrorAggregator, get_error_aggregator, report_error
from buttress.observe.health import HealthCheck, HealthRegistry
from buttress.observe.metrics import MetricsRegistry, get_metrics, reset_metrics
from buttress.observe.profiler import Profiler, get_profiler
from buttress.resilience import get_breakers, get_pipeline, get_resilience_store
from buttress.resilience._defaults import ResilienceDefaults

DEFAULT_TYPES = (
    Settings,
    Clock,
    MetricsRegistry,
    ErrorAggregator,
    Profiler,
    EventBus,
    Cache,
    ResilienceDefaults,
    HttpClient,
    AsyncHttpClient,
    HealthRegistry,
)

pytestmark = pytest.mark.usefixtures("isolated_settings")


def _custom_settings(**environ: str) -> Settings:
    return load_settings(
        env_file=None,
        environ={
            "BUTTRESS_APP__NAME": "custom-svc",
            "BUTTRESS_REDIS_URL": "redis://127.0.0.1:6379/15",
            **environ,
        },
    )


def _check_names(registry: HealthRegistry) -> list[str]:
    return [check.name for check in registry]


# -- the accessors are thin wrappers over the container ------------------------------------------------


def test_every_accessor_returns_the_default_containers_instance() -> None:
    container = get_container()
    assert all(container.is_registered(t) for t in DEFAULT_TYPES)
    assert container.resolve(Settings) is get_settings()
    assert container.resolve(Clock) is SYSTEM_CLOCK
    assert get_metrics() is container.resolve(MetricsRegistry) is get_metrics()
    assert get_error_aggregator() is container.resolve(ErrorAggregator)
    assert get_profiler() is container.resolve(Profiler)
    assert get_event_bus() is container.resolve(EventBus)
    assert get_cache() is container.resolve(Cache)
    defaults = container.resolve(ResilienceDefaults)
    assert get_resilience_store() is defaults.store is None  # memory, by default
    assert get_breakers() is defaults.breakers
    assert get_pipeline("payments", defaults=True) is defaults.pipeline("payments", defaults=True)
    assert get_http_client() is container.resolve(HttpClient)
    assert get_http_client().policies is get_http_policies()
    health = container.resolve(HealthRegistry)
    assert container.resolve(HealthRegistry) is health  # a singleton
    assert health.service_id == get_settings().app.name == "buttress"
    assert _check_names(health) == ["cache", "disk", "memory"]  # no Redis or database URL configured


async def test_defaults_resolve_asynchronously_too() -> None:
    container = get_container()
    assert await container.aresolve(Settings) is get_settings()
    assert await container.aresolve(EventBus) is get_event_bus()
    assert await container.aresolve(Cache) is get_cache()
    client = get_async_http_client()
    assert await container.aresolve(AsyncHttpClient) is client
    assert client.policies is get_http_policies()
    await client.aclose()
    health = await container.aresolve(HealthRegistry)
    assert container.resolve(HealthRegistry) is health


def test_report_error_records_into_the_containers_aggregator() -> None:
    fingerprint = report_error(ValueError("bad row"), table="users")
    assert fingerprint in {group.fingerprint for group in get_container().resolve(ErrorAggregator).groups()}


def test_nothing_is_built_before_it_is_resolved() -> None:
    container = get_container()
    assert all(container.peek(t) is None for t in DEFAULT_TYPES if t is not Clock)
    health = container.resolve(HealthRegistry)
    assert container.peek(HealthRegistry) is health
    assert container.peek(Cache) is None  # the cache check resolves the cache when it runs, not before
    assert container.peek(EventBus) is None


def test_importing_the_container_imports_none_of_the_defaults() -> None:
    code = (
        "import sys, buttress.container\n"
        "heavy = {'buttress.observe.health', 'buttress.observe.metrics', 'buttress.cache',\n"
        "         'buttress.composition', 'prometheus_client'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_observe_health_imports_neither_the_cache_nor_resilience() -> None:
    code = (
        "import sys, buttress.observe.health\n"
        "print(sorted(m for m in sys.modules if m.startswith(('buttress.cache', 'buttress.resilience'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- overriding the container is what the accessors return ---------------------------------------------


def test_an_override_on_the_container_is_what_every_accessor_returns() -> None:
    container = get_container()
    cache, bus, metrics, profiler, aggregator = (
        Cache(),
        EventBus(),
        MetricsRegistry(),
        Profiler(),
        ErrorAggregator(),
    )
    try:
        with (
            container.override(Cache, cache),
            container.override(EventBus, bus),
            container.override(MetricsRegistry, metrics),
            container.override(Profiler, profiler),
            container.override(ErrorAggregator, aggregator),
        ):
            assert get_cache() is cache
            assert get_event_bus() is bus
            assert get_metrics() is metrics
            assert get_profiler() is profiler
            assert get_error_aggregator() is aggregator
        assert get_cache() is not cache
        assert get_event_bus() is not bus
    finally:
        bus.close()


def test_set_is_an_adopting_override_and_hands_the_previous_one_back() -> None:
    container = get_container()
    built = get_cache()
    mine = Cache()
    assert set_cache(mine) is built  # the built one is the caller's now: the container will not close it
    assert get_cache() is mine is container.resolve(Cache)
    assert set_cache(None) is mine
    fresh = get_cache()
    assert fresh is not mine  # back to the registration: a new one from settings
    assert fresh is not built
    assert set_cache(built) is fresh


def test_reset_of_one_service_closes_an_adopted_replacement() -> None:
    mine = EventBus()
    assert set_event_bus(mine) is None  # nothing was built
    assert get_event_bus() is mine
    reset_event_bus()
    assert mine.closed
    assert get_event_bus() is not mine


def test_reset_metrics_installs_a_registry_or_forgets_it() -> None:
    first = get_metrics()
    registry = MetricsRegistry(clock=FakeClock())
    reset_metrics(registry)
    assert get_metrics() is registry is get_container().resolve(MetricsRegistry)
    reset_metrics()
    assert get_metrics() not in (first, registry)


def test_a_default_can_be_replaced_by_registering_again() -> None:
    container = get_container()
    clock = FakeClock()
    container.register_instance(Clock, clock)
    assert container.resolve(Clock) is clock
    container.register_instance(Settings, _custom_settings())
    assert container.resolve(HealthRegistry).service_id == "custom-svc"


def test_overriding_settings_reaches_the_services_built_during_the_override() -> None:
    container = get_container()
    real = container.resolve(HealthRegistry)
    custom = _custom_settings(BUTTRESS_CACHE__DEFAULT_TTL="42", BUTTRESS_CACHE__BACKEND="memory")
    with container.override(Settings, custom):
        overridden = container.resolve(HealthRegistry)
        assert overridden is not real
        assert overridden.service_id == "custom-svc"
        assert _check_names(overridden) == ["redis", "cache", "disk", "memory"]  # built, not connected
        assert get_cache().ttl == 42
    assert container.resolve(HealthRegistry) is real
    assert get_cache().ttl != 42


# -- one reset closes what the container built -------------------------------------------------------------


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def test_reset_container_closes_what_it_built_and_the_next_get_builds_anew() -> None:
    before = set(threading.enumerate())
    bus = get_event_bus()
    seen: list[str] = []
    bus.subscribe("app.*", lambda event: seen.append(event.topic))
    bus.publish("app.started")
    assert bus.flush(5.0)
    assert seen == ["app.started"]
    workers = _new_threads(before)
    assert workers
    assert all(t.is_alive() for t in workers)
    cache, health, client = get_cache(), get_container().resolve(HealthRegistry), get_http_client()
    closed: list[str] = []
    health.register(HealthCheck(name="probe", fn=lambda: None, close=lambda: closed.append("probe")))
    first = get_container()
    reset_container()
    assert bus.closed
    assert not any(t.is_alive() for t in workers)  # the bus's workers stopped
    assert closed == ["probe"]
    assert client.is_closed
    assert get_container() is not first
    assert get_event_bus() is not bus
    assert get_cache() is not cache
    assert get_http_client() is not client
    assert get_container().resolve(HealthRegistry) is not health


def test_reset_container_closes_in_reverse_creation_order() -> None:
    container = get_container()
    order: list[str] = []

    class Closing:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            order.append(self.name)

    class First(Closing): ...

    class Second(Closing): ...

    container.register(First, lambda: First("first"))
    container.register(Second, lambda: Second("second"))
    container.resolve(First)
    container.resolve(Second)
    reset_container()
    assert order == ["second", "first"]


def test_an_adopted_instance_is_closed_once_even_if_adopted_twice() -> None:
    built = get_event_bus()
    closes: list[None] = []
    original = built.close

    def counting_close(timeout: float | None = 5.0) -> None:
        closes.append(None)
        original(timeout)

    built.close = counting_close  # type: ignore[method-assign]
    assert set_event_bus(built) is built  # handed back and adopted again
    reset_container()
    assert len(closes) == 1


@pytest.mark.redis
def test_reset_container_closes_the_caches_redis_pool_and_its_invalidation_bus(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_client: Any
) -> None:
    def connections() -> int:
        own = redis_client.client_id()
        db = redis_url.rsplit("/", 1)[-1]
        return sum(1 for c in redis_client.client_list() if c["db"] == db and int(c["id"]) != own)

    baseline = connections()
    monkeypatch.setenv("BUTTRESS_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTRESS_CACHE__BACKEND", "tiered")
    monkeypatch.setenv("BUTTRESS_CACHE__PREFIX", f"t{uuid.uuid4().hex[:8]}")
    reset_settings()
    before = set(threading.enumerate())
    cache = get_cache()
    cache.set("k", 1)
    assert cache.get("k") == 1
    invalidations = cache.backend.bus  # type: ignore[attr-defined]
    assert invalidations is not None
    assert invalidations is not get_container().peek(EventBus)
    threads = _new_threads(before)
    assert threads
    assert connections() > baseline
    reset_container()
    assert invalidations.closed
    assert not any(t.is_alive() for t in threads)  # the Redis transport's sender and listener stopped
    remaining = connections()
    for _ in range(100):  # the server drops a closed socket's client on its next loop turn
        if remaining == baseline:
            break
        remaining = connections()
    assert remaining == baseline


@pytest.mark.redis
def test_reset_container_closes_the_resilience_store(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("BUTTRESS_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTRESS_RESILIENCE__STORE", "redis")
    reset_settings()
    store = get_resilience_store()
    assert store is not None
    assert store.check().status == "pass"
    reset_container()
    assert get_resilience_store() is not store


# -- a first get from many threads builds exactly one ---------------------------------------------------


def _race(get: Callable[[], object], threads: int = 8) -> list[object]:
    barrier = threading.Barrier(threads)
    seen: list[object] = []

    def worker() -> None:
        barrier.wait()
        seen.append(get())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return seen


@pytest.mark.parametrize(
    ("service_type", "get", "factory"),
    [
        (Cache, get_cache, lambda: build_cache(get_settings())),
        (EventBus, get_event_bus, EventBus),
        (MetricsRegistry, get_metrics, MetricsRegistry),
        (Profiler, get_profiler, Profiler),
        (ErrorAggregator, get_error_aggregator, ErrorAggregator),
        (ResilienceDefaults, get_breakers, lambda: ResilienceDefaults(get_settings())),
        (HttpDefaults, get_http_policies, lambda: HttpDefaults(get_settings().http)),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_concurrent_first_gets_from_eight_threads_build_exactly_one(
    service_type: type[Any], get: Callable[[], object], factory: Callable[[], object]
) -> None:
    built: list[object] = []

    def counting() -> object:
        instance = factory()
        built.append(instance)
        return instance

    container = Container()  # buttress's defaults, with the real factory of service_type counted
    register_defaults(container)
    container.register(service_type, counting)
    set_container(container)
    seen = _race(get)
    assert len(seen) == 8
    assert len({id(x) for x in seen}) == 1
    assert len(built) == 1


def test_get_container_itself_is_created_once_under_a_race() -> None:
    reset_container()
    seen = _race(get_container)
    assert all(c is seen[0] for c in seen)


# -- the composition root gathers each capability's health checks ------------------------------------------


def test_capabilities_offer_their_own_checks_and_the_root_gathers_them() -> None:
    settings = _custom_settings(
        BUTTRESS_RESILIENCE__STORE="redis",
        BUTTRESS_EVENTS__TRANSPORT="redis",
        BUTTRESS_DATABASE_URL="sqlite://",
    )
    registry = health_registry(settings, Container())
    jobs = sys.modules.get("buttress.jobs")
    defines_jobs = jobs is not None and bool(jobs.REGISTRY.tasks)  # other tests' @job, or none: both rules
    try:
        assert [(c.name, c.critical) for c in registry] == [
            ("redis", True),
            ("database", True),
            ("resilience_store", False),
            ("cache", False),
            ("events", False),
            *([("jobs", False)] if defines_jobs else []),  # a program that defines jobs, on a shared database
            ("disk", False),
            ("memory", False),
        ]
    finally:
        registry.close()


def test_the_events_check_reports_the_transport() -> None:
    from buttress.events._provide import transport_health

    bus = EventBus()
    assert transport_health(bus).status == "pass"
    bus.close()
    assert transport_health(bus).status == "warn"


def test_set_container_installs_a_container_without_defaults() -> None:
    mine = Container()
    set_container(mine)
    assert get_container() is mine
    assert not any(mine.is_registered(t) for t in DEFAULT_TYPES)
    register_defaults(mine)
    assert get_event_bus() is mine.resolve(EventBus)


def test_reset_cache_closes_only_the_cache() -> None:
    bus, cache = get_event_bus(), get_cache()
    reset_cache()
    assert get_cache() is not cache
    assert get_event_bus() is bus
    assert not bus.closed


def test_accessors_in_another_event_loop_get_their_own_async_client() -> None:
    async def grab() -> AsyncHttpClient:
        return get_async_http_client()

    first, second = asyncio.run(grab()), asyncio.run(grab())
    assert first is not second


@pytest.fixture(autouse=True)
def _no_leftover_settings() -> Iterator[None]:
    yield
    reset_container()
    reset_settings()


# -- on demand: one capability's registrations, when one of its types is first asked for ---------------


def _modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith('buttress.')))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # noqa: S307 - our own probe's printed list


def test_the_metrics_accessor_registers_observe_and_loads_no_other_capability() -> None:
    loaded = _modules_after(
        "from buttress.observe.metrics import get_metrics\n"
        "get_metrics().counter('buttress_probe_total', 'Probe.').inc()"
    )
    assert not {"buttress.cache", "buttress.http", "buttress.events", "buttress.config"} & set(loaded)
    assert "buttress.composition" in loaded  # the default container did ask the composition root


def test_a_capability_registers_once_and_only_its_own_services() -> None:
    container = get_container()
    get_metrics()
    assert container.peek(Cache) is None  # observe's provider built nothing of the cache's
    assert container.is_registered(Cache)  # asking registers the cache's services, still builds nothing
    assert container.peek(Cache) is None


def test_a_container_of_your_own_has_nothing_on_demand() -> None:
    mine = Container()
    with pytest.raises(Exception, match="MetricsRegistry"):
        mine.resolve(MetricsRegistry)
