"""N+1 detection per unit of work: one statement run again and again from one line, in one scope.

A scope is a request or a job, opened with ``with query_scope("GET /orders"):`` (or ``async with``; a
ContextVar carries it, so each task and thread sees its own). Inside it, every SELECT, INSERT, UPDATE and
DELETE is counted per fingerprint. From the second run of a fingerprint on, the user code's ``file:line``
is looked up (:mod:`buttress.db._callsite`); the first run is attributed to the site of the second, which
in a loop is the same line. An incident is raised once per scope, fingerprint and site when that site ran
the statement at least ``threshold`` times with more than one set of parameters: a loop that fetches
rows one by one. Not flagged: the same statement spread over several scopes, one batched statement
(``IN (...)`` is one run), statements outside any scope, a loop below the threshold, and a loop that
repeats the very same parameters (a duplicate query, not N+1). When the scope ends, each incident's count
is brought up to the number of runs the scope saw.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from buttress.container import current_scope as current_unit
from buttress.db._callsite import call_site
from buttress.errors import ValidationError

__all__ = ["NPlusOneIncident", "QueryScope", "ScopeState", "current_scope", "query_scope"]

_MAX_SITES: Final = 64
"""Call sites followed per fingerprint and scope; further sites are not followed (memory stays bounded)."""


@dataclass(frozen=True, slots=True)
class NPlusOneIncident:
    """One N+1: ``count`` runs of ``sql`` (``fingerprint``) from ``site`` (``file:line``) in ``scope``."""

    scope: str
    fingerprint: str
    sql: str
    site: str
    count: int
    at: float


class _Site:
    __slots__ = ("count", "first_key", "varied")

    def __init__(self, first_key: int) -> None:
        self.count = 0
        self.first_key = first_key
        self.varied = False


class _Seen:
    __slots__ = ("count", "first_parameters", "sites")

    def __init__(self, parameters: Any) -> None:
        self.count = 1
        self.first_parameters = parameters  # in memory only: hashed, never shown
        self.sites: dict[str, _Site] = {}


Raise = Callable[["ScopeState", Any, str, int], NPlusOneIncident | None]
"""What a tracker does when a site crosses the threshold: record, publish, return the incident."""
Update = Callable[[NPlusOneIncident, int], None]


class ScopeState:
    """The counts of one open scope."""

    __slots__ = ("flagged", "name", "seen")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict[Any, _Seen] = {}
        self.flagged: dict[tuple[Any, str], tuple[NPlusOneIncident, _Site, Update]] = {}

    def saw(self, entry: Any, parameters: Any, threshold: int, raise_: Raise, update: Update) -> None:
        """Count one run of ``entry``'s fingerprint with ``parameters``."""
        seen = self.seen.get(entry)
        if seen is None:
            self.seen[entry] = _Seen(parameters)
            return
        seen.count += 1
        site_name = call_site(3)
        site = seen.sites.get(site_name)
        if site is None:
            if len(seen.sites) >= _MAX_SITES:
                return
            if seen.count == 2:  # the first run, attributed to the loop's line
                site = seen.sites[site_name] = _Site(_key(seen.first_parameters))
                site.count = 1
                seen.first_parameters = None
            else:
                site = seen.sites[site_name] = _Site(_key(parameters))
        site.count += 1
        if not site.varied and _key(parameters) != site.first_key:
            site.varied = True
        if site.count >= threshold and site.varied and (entry, site_name) not in self.flagged:
            incident = raise_(self, entry, site_name, site.count)
            if incident is not None:
                self.flagged[entry, site_name] = (incident, site, update)

    def close(self) -> None:
        """Bring each incident's count up to the runs seen by the end of the scope."""
        for incident, site, update in self.flagged.values():
            if site.count > incident.count:
                update(incident, site.count)
        self.seen.clear()


def _key(parameters: Any) -> int:
    """A hash of ``parameters``, to tell runs with the same values from runs with others."""
    try:
        if isinstance(parameters, Mapping):
            return hash(tuple(parameters.values()))
        return hash(tuple(parameters) if isinstance(parameters, list) else parameters)
    except TypeError:  # unhashable values (arrays, JSON): their text will do
        return hash(repr(parameters))


_current: contextvars.ContextVar[ScopeState | None] = contextvars.ContextVar(
    "buttress_db_scope", default=None
)


def current_scope() -> ScopeState | None:
    """The query scope open in this context; else the current container scope's (a request, a job); else None.

    A container scope needs nothing opened: its counts live on the scope object (``Scope.local``). Its
    incidents keep the count they had when flagged (nothing tells the detector when a container scope ends).
    """
    state = _current.get()
    if state is not None:
        return state
    unit = current_unit()
    return None if unit is None else unit.local(ScopeState, lambda: ScopeState(unit.name))


class QueryScope:
    """``with``/``async with`` block marking one unit of work for N+1 detection; see :func:`query_scope`."""

    __slots__ = ("_token", "state")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError(
                f"scope name must be a non-empty string, got {name!r}; e.g. scope('GET /orders')",
                field="name",
            )
        self.state = ScopeState(name)
        self._token: contextvars.Token[ScopeState | None] | None = None

    def __repr__(self) -> str:
        return f"QueryScope({self.state.name!r})"

    def __enter__(self) -> QueryScope:
        if self._token is not None:
            raise ValidationError(
                f"scope {self.state.name!r} is already open; open a new scope() per unit of work",
                field="scope",
            )
        self._token = _current.set(self.state)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _current.reset(token)
        self.state.close()

    async def __aenter__(self) -> QueryScope:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, tb)


def query_scope(name: str) -> QueryScope:
    """A scope named ``name`` (a request, a job) for every database's N+1 detection.

    Statements outside any scope are never flagged. Scopes nest: the inner one counts on its own.
    """
    return QueryScope(name)


def replace_count(incident: NPlusOneIncident, count: int) -> NPlusOneIncident:
    """``incident`` with its final ``count``."""
    return dataclasses.replace(incident, count=count)
