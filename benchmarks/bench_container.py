"""Resolving services: buttress.container against svcs and punq, measured in the same run."""

from __future__ import annotations

import punq
import svcs

from benchmarks._harness import Row, Table, measure_ns
from buttress.container import Container, Lifetime


class Engine:
    """A dependency-free service."""


class Repository:
    """A service with one auto-wired dependency."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine


def _buttress() -> Container:
    container = Container()
    container.register(Engine)
    container.register(Repository, lifetime=Lifetime.TRANSIENT)
    return container


def _buttress_transient() -> Container:
    container = Container()
    container.register(Engine, lifetime=Lifetime.TRANSIENT)
    return container


def _punq() -> punq.Container:
    container = punq.Container()
    container.register(Engine, scope=punq.Scope.singleton)
    container.register(Repository)  # transient by default, auto-wired from the constructor's hints
    return container


def _punq_transient() -> punq.Container:
    container = punq.Container()
    container.register(Engine)
    return container


def _svcs_registry() -> svcs.Registry:
    registry = svcs.Registry()
    registry.register_value(Engine, Engine())

    def make_repository(container: svcs.Container) -> Repository:
        return Repository(container.get(Engine))

    registry.register_factory(Repository, make_repository)
    return registry


def _svcs_transient_registry() -> svcs.Registry:
    registry = svcs.Registry()
    registry.register_factory(Engine, Engine)
    return registry


def _request_scope(container: Container) -> Repository:
    with container.scope() as scope:
        return scope.resolve(Repository)


def _svcs_request(registry: svcs.Registry) -> Repository:
    with svcs.Container(registry) as container:
        return container.get(Repository)


def run() -> Table:
    b, b_transient, b_scoped = _buttress(), _buttress_transient(), _buttress()
    b_scoped.register(Repository, lifetime=Lifetime.SCOPED)
    p, p_transient = _punq(), _punq_transient()
    registry, transient_registry = _svcs_registry(), _svcs_transient_registry()
    b.resolve(Engine)
    b_scoped.resolve(Engine)
    p.resolve(Engine)
    svcs_cached = svcs.Container(registry)
    svcs_cached.get(Engine)

    assert b.resolve(Repository) is not b.resolve(Repository)
    assert b.resolve(Repository).engine is b.resolve(Engine)
    assert p.resolve(Repository).engine is p.resolve(Engine)
    assert svcs.Container(registry).get(Repository).engine is svcs_cached.get(Engine)
    assert _request_scope(b_scoped).engine is b_scoped.resolve(Engine)

    singleton = {
        "svcs": measure_ns(lambda: svcs_cached.get(Engine)),
        "punq": measure_ns(lambda: p.resolve(Engine)),
    }
    transient = {
        "svcs": measure_ns(lambda: svcs.Container(transient_registry).get(Engine)),
        "punq": measure_ns(lambda: p_transient.resolve(Engine)),
    }
    wired = {
        "svcs": measure_ns(lambda: svcs.Container(registry).get(Repository)),
        "punq": measure_ns(lambda: p.resolve(Repository)),
    }
    rows = [
        Row("resolve a singleton (already built)", measure_ns(lambda: b.resolve(Engine)), singleton),
        Row(
            "resolve a transient, no dependencies", measure_ns(lambda: b_transient.resolve(Engine)), transient
        ),
        Row(
            "resolve a transient with one dependency (auto-wired)",
            measure_ns(lambda: b.resolve(Repository)),
            wired,
        ),
        Row(
            "request scope: enter, resolve a scoped service with one dependency, exit",
            measure_ns(lambda: _request_scope(b_scoped)),
            {"svcs": measure_ns(lambda: _svcs_request(registry))},
        ),
    ]
    notes = [
        (
            "buttress: `Container.resolve(T)`; the singleton is built before timing, transients are "
            "registered with `Lifetime.TRANSIENT`, and `Repository(engine: Engine)` is wired from its type "
            "hints through a plan cached at the first resolve. No scope is active in the first three rows."
        ),
        (
            "svcs has no transient lifetime: a `svcs.Container` caches every instance it builds, like a "
            "scope. The singleton row reads a value cached in one long-lived `svcs.Container`; the transient "
            "rows create a fresh `svcs.Container(registry)` per resolve (what a request does) so the factory "
            "really runs, which also counts the svcs container's creation. svcs does not auto-wire: its "
            "`Repository` factory takes the container and calls `container.get(Engine)` (a `register_value`)."
        ),
        (
            "punq: `punq.Container.resolve(T)`; the singleton is registered with "
            "`scope=punq.Scope.singleton` "
            "and built before timing; transients use punq's default scope and its own auto-wiring from "
            "constructor annotations. punq has no request scopes (n/a in the last row)."
        ),
        (
            "request scope: buttress `with container.scope() as s: s.resolve(Repository)` with Repository "
            "SCOPED (the scope becomes current through a ContextVar and closes what it created); svcs "
            "`with svcs.Container(registry) as c: c.get(Repository)`."
        ),
    ]
    return Table("Dependency injection: resolve", anchors=["svcs", "punq"], rows=rows, notes=notes)
