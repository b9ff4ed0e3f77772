"""Health check registry and runner: concurrent, each check under its own timeout, never raising.

A check is a sync or async callable. It passes by returning ``None`` or ``True``, fails by returning
``False`` or raising, and says anything richer with a :class:`CheckResult`. :meth:`HealthRegistry.run`
runs the selected checks at the same time and folds them into a :class:`HealthReport`, whose
:meth:`~HealthReport.to_dict` is an ``application/health+json`` document (draft-inadarei-api-health-check).

Why sync checks get a daemon thread each instead of :func:`asyncio.to_thread`: the default executor is
small (``min(32, cpus + 4)`` workers), so ten slow checks on a two-core host would queue behind each
other instead of running concurrently; a hung check would hold a pool worker forever; and
``asyncio.run`` joins the default executor on exit, so :meth:`HealthRegistry.run_sync` would never
return while a check hangs. A daemon thread that outlives its timeout is simply abandoned: its check is
reported failed at once, the thread finishes (or not) on its own and never blocks interpreter exit.
Give blocking checks their own socket timeouts (the built-ins do) so abandoned threads end soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.health_types import CheckResult, HealthStatus, describe_exception
from buttress.health_types import clip as _clip
from buttress.observe.secrets import scrub

__all__ = [
    "HEALTH_CONTENT_TYPE",
    "STANDARD_GROUPS",
    "CheckFunction",
    "CheckOutcome",
    "CheckResult",
    "HealthCheck",
    "HealthRegistry",
    "HealthReport",
    "HealthStatus",
    "aggregate_status",
]

HEALTH_CONTENT_TYPE = "application/health+json"
STANDARD_GROUPS: frozenset[str] = frozenset({"liveness", "readiness", "startup"})
"""Groups that always exist (an empty group passes), so probes can be wired before checks are added."""


CheckFunction = Callable[[], Any]
"""A check: sync or async, returning ``None``, a ``bool`` or a :class:`CheckResult`."""

F = TypeVar("F", bound=CheckFunction)


def rfc3339(timestamp: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with milliseconds, the form the health draft shows."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    """Keep observed values JSON-clean: NaN/inf become null, unknown objects become their ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _validate_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"health check {what} must be a non-empty string, got {value!r}", field=what)
    if ":" in value:
        raise ValidationError(
            f"health check {what} {value!r} must not contain ':', which separates name and measurement "
            "in health+json keys; pass the part after ':' as measurement=",
            field=what,
        )
    return value


def _normalize_groups(groups: Iterable[str] | str) -> frozenset[str]:
    items = (groups,) if isinstance(groups, str) else tuple(groups)
    if not items or any(not isinstance(g, str) or not g.strip() for g in items):
        raise ValidationError(
            "health check groups must be non-empty names such as 'liveness', 'readiness', 'startup', "
            f"got {groups!r}",
            field="groups",
        )
    return frozenset(items)


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004 - async __call__


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One registered check and how to run and report it.

    ``critical`` checks decide between ``pass`` and ``fail``; a failing optional check only turns the
    report to ``warn``. ``close`` releases what the check holds (engines, pools) when the registry closes.
    """

    name: str
    fn: CheckFunction
    critical: bool = True
    timeout: float = 2.0
    groups: frozenset[str] = frozenset({"readiness"})
    component_type: str = "component"
    component_id: str | None = None
    measurement: str | None = None
    observed_unit: str | None = None
    close: Callable[[], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _validate_name(self.name, "name")
        if self.measurement is not None:
            _validate_name(self.measurement, "measurement")
        if not callable(self.fn):
            raise ValidationError(
                f"health check {self.name!r}: fn must be callable, got {self.fn!r}", field="fn"
            )
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise ValidationError(
                f"health check {self.name!r}: timeout must be a finite number of seconds > 0, "
                f"got {self.timeout!r}",
                field="timeout",
            )
        object.__setattr__(self, "groups", _normalize_groups(self.groups))

    @property
    def key(self) -> str:
        """The health+json ``checks`` key: ``name`` or ``name:measurement``."""
        return f"{self.name}:{self.measurement}" if self.measurement else self.name

    @property
    def is_async(self) -> bool:
        return _is_async_callable(self.fn)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of running one check: its status, message, reading, time and duration."""

    check: HealthCheck
    status: HealthStatus
    output: str
    observed_value: Any
    observed_unit: str | None
    time: float
    duration: float

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def critical(self) -> bool:
        return self.check.critical

    def to_dict(self) -> dict[str, Any]:
        """One entry of the health+json ``checks`` array.

        ``duration`` is not in the draft; it is an extension member in the protobuf JSON duration form
        (seconds with a trailing ``s``, e.g. ``"0.012345s"``). ``output`` is omitted on ``pass``, as the
        draft asks; ``critical`` is an extension member too.
        """
        entry: dict[str, Any] = {}
        if self.check.component_id is not None:
            entry["componentId"] = self.check.component_id
        entry["componentType"] = self.check.component_type
        if self.observed_value is not None:
            entry["observedValue"] = self.observed_value
            if self.observed_unit is not None:
                entry["observedUnit"] = self.observed_unit
        entry["status"] = self.status
        entry["time"] = rfc3339(self.time)
        entry["duration"] = f"{self.duration:.6f}s"
        entry["critical"] = self.check.critical
        if self.status != "pass" and self.output:
            entry["output"] = self.output
        return entry


def aggregate_status(outcomes: Iterable[CheckOutcome]) -> HealthStatus:
    """Fold check results: a critical fail fails; an optional fail or any warn warns; else pass."""
    status: HealthStatus = "pass"
    for outcome in outcomes:
        if outcome.status == "fail" and outcome.critical:
            return "fail"
        if outcome.status != "pass":
            status = "warn"
    return status


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every selected check's outcome and the overall status, ready for HTTP or the CLI."""

    status: HealthStatus
    checks: tuple[CheckOutcome, ...]
    time: float
    group: str | None = None
    service_id: str | None = None
    version: str | None = None
    release_id: str | None = None
    description: str | None = None

    @property
    def http_status(self) -> int:
        """503 only on ``fail``: a ``warn`` service still takes traffic."""
        return 503 if self.status == "fail" else 200

    @property
    def failed_critical(self) -> tuple[CheckOutcome, ...]:
        return tuple(o for o in self.checks if o.critical and o.status == "fail")

    def __getitem__(self, name: str) -> CheckOutcome:
        for outcome in self.checks:
            if outcome.name == name:
                return outcome
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The ``application/health+json`` document (draft-inadarei-api-health-check)."""
        document: dict[str, Any] = {"status": self.status}
        meta = {
            "version": self.version,
            "releaseId": self.release_id,
            "serviceId": self.service_id,
            "description": self.description,
        }
        document.update({key: value for key, value in meta.items() if value is not None})
        if self.status != "pass":
            failing = [o.name for o in self.checks if o.status == "fail"]
            warning = [o.name for o in self.checks if o.status == "warn"]
            labelled = (("fail", failing), ("warn", warning))
            parts = [f"{label}: {', '.join(names)}" for label, names in labelled if names]
            document["output"] = "; ".join(parts)
        document["checks"] = {o.check.key: [o.to_dict()] for o in self.checks}
        return document

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _interpret(value: Any) -> CheckResult:
    """Turn whatever a check returned into a result; anything unexpected is a failure, never an error."""
    if value is None or value is True:
        return CheckResult("pass")
    if value is False:
        return CheckResult("fail", "check returned False")
    if isinstance(value, CheckResult):
        return value
    return CheckResult(
        "fail",
        f"check returned an unsupported {type(value).__name__}; return None, a bool or a CheckResult",
    )


class HealthRegistry:
    """Named health checks, grouped (liveness, readiness, startup or custom) and run concurrently.

    The registry is safe to share between threads; :meth:`run` may be awaited from several tasks at once.
    """

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        service_id: str | None = None,
        version: str | None = None,
        release_id: str | None = None,
        description: str | None = None,
    ) -> None:
        self._clock = clock
        self._checks: dict[str, HealthCheck] = {}
        self._lock = threading.Lock()
        self.service_id = service_id
        self.version = version
        self.release_id = release_id
        self.description = description

    # -- registration ---------------------------------------------------------------------------

    def register(self, check: HealthCheck) -> HealthCheck:
        """Add a ready-made check, such as one from the built-in factories."""
        if not isinstance(check, HealthCheck):
            raise ValidationError(
                f"register() takes a HealthCheck, got {type(check).__name__}", field="check"
            )
        with self._lock:
            if check.name in self._checks:
                raise ValidationError(
                    f"a health check named {check.name!r} is already registered; names must be unique",
                    field="name",
                )
            self._checks[check.name] = check
        return check

    def add(
        self,
        name: str,
        fn: CheckFunction,
        *,
        critical: bool = True,
        timeout: float = 2.0,
        groups: Iterable[str] | str = ("readiness",),
        component_type: str = "component",
        component_id: str | None = None,
        measurement: str | None = None,
        observed_unit: str | None = None,
    ) -> HealthCheck:
        """Register ``fn`` (sync or async) as the check ``name``; duplicate names are refused."""
        return self.register(
            HealthCheck(
                name=name,
                fn=fn,
                critical=critical,
                timeout=timeout,
                groups=_normalize_groups(groups),
                component_type=component_type,
                component_id=component_id,
                measurement=measurement,
                observed_unit=observed_unit,
            )
        )

    def check(
        self,
        name: str,
        *,
        critical: bool = True,
        timeout: float = 2.0,
        groups: Iterable[str] | str = ("readiness",),
        component_type: str = "component",
        component_id: str | None = None,
        measurement: str | None = None,
        observed_unit: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add`; the function is returned unchanged."""

        def decorate(fn: F) -> F:
            self.add(
                name,
                fn,
                critical=critical,
                timeout=timeout,
                groups=groups,
                component_type=component_type,
                component_id=component_id,
                measurement=measurement,
                observed_unit=observed_unit,
            )
            return fn

        return decorate

    def remove(self, name: str) -> HealthCheck:
        with self._lock:
            return self._checks.pop(name)

    def get(self, name: str) -> HealthCheck | None:
        return self._checks.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._checks

    def __iter__(self) -> Iterator[HealthCheck]:
        with self._lock:
            return iter(tuple(self._checks.values()))

    def __len__(self) -> int:
        return len(self._checks)

    @property
    def groups(self) -> frozenset[str]:
        """The standard groups plus every custom group a check declared."""
        return STANDARD_GROUPS.union(*(c.groups for c in self))

    def select(self, group: str | None = None) -> tuple[HealthCheck, ...]:
        """The checks in ``group`` (all when ``None``); an unknown custom group is a typo, so it raises."""
        checks = tuple(self)
        if group is None:
            return checks
        if group not in self.groups:
            raise ValidationError(
                f"unknown health check group {group!r}; known groups: {', '.join(sorted(self.groups))}",
                field="group",
            )
        return tuple(c for c in checks if group in c.groups)

    def close(self) -> None:
        """Release what built-in checks hold (engines, connection pools); errors are swallowed on purpose."""
        for check in self:
            if check.close is not None:
                # Best effort: one check failing to close must not keep the others open.
                with contextlib.suppress(Exception):
                    check.close()

    # -- running --------------------------------------------------------------------------------

    async def run(self, group: str | None = None) -> HealthReport:
        """Run the checks of ``group`` (all when ``None``) concurrently; a failing check never raises.

        The only exception is :class:`ValidationError` for a group no check declared (a typo in a probe
        path should not look healthy); standard groups are always accepted, even when empty.
        """
        checks = self.select(group)
        outcomes = await asyncio.gather(*(self._run_one(c) for c in checks))
        return HealthReport(
            status=aggregate_status(outcomes),
            checks=tuple(outcomes),
            time=self._clock.time(),
            group=group,
            service_id=self.service_id,
            version=self.version,
            release_id=self.release_id,
            description=self.description,
        )

    def run_sync(self, group: str | None = None) -> HealthReport:
        """:meth:`run` for callers without an event loop (the CLI, a WSGI view, a cron script).

        Each call uses a fresh event loop, so async checks must not keep loop-bound clients between runs.
        Called from a thread that already runs a loop, it runs on a helper thread instead of failing.
        """
        self.select(group)  # validate here so a bad group raises in the caller's thread
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(group))
        box: list[HealthReport] = []
        helper = threading.Thread(
            target=lambda: box.append(asyncio.run(self.run(group))), name="buttress-health-run"
        )
        helper.start()
        helper.join()
        return box[0]

    async def _run_one(self, check: HealthCheck) -> CheckOutcome:
        start = self._clock.monotonic()
        try:
            result = await self._call(check)
        except _TimedOut:
            result = CheckResult("fail", f"timed out after {check.timeout}s")
        except Exception as exc:  # noqa: BLE001 - a check that raises is a failed check, never an error
            result = CheckResult("fail", describe_exception(exc))
        duration = max(self._clock.monotonic() - start, 0.0)
        return CheckOutcome(
            check=check,
            status=result.status,
            output=_clip(scrub(result.output)),  # health documents are read anonymously
            observed_value=_json_value(result.observed_value),
            observed_unit=result.observed_unit if result.observed_unit is not None else check.observed_unit,
            time=self._clock.time(),
            duration=duration,
        )

    async def _call(self, check: HealthCheck) -> CheckResult:
        """Run the check within its timeout; raise :class:`_TimedOut` or the check's own exception."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + check.timeout
        value: Any
        if check.is_async:
            value = await _bounded(check.fn(), deadline)
        else:
            value = await _bounded(_in_daemon_thread(check), deadline)
        if inspect.isawaitable(value):  # a sync callable that hands back a coroutine (partial, lambda)
            value = await _bounded(value, deadline)
        return _interpret(value)


class _TimedOut(Exception):
    """The runner's own timeout, distinct from a ``TimeoutError`` a check raises with its own message."""


async def _bounded(awaitable: Awaitable[Any], deadline: float) -> Any:
    """Await until ``deadline`` (loop time); on timeout cancel and abandon, never wait for the cancel.

    Unlike :func:`asyncio.wait_for`, this does not hang if a check swallows the cancellation.
    """
    future = asyncio.ensure_future(awaitable)
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        done, _ = await asyncio.wait({future}, timeout=max(remaining, 0.0))
    except asyncio.CancelledError:  # the whole run was cancelled: take the check down with it
        future.cancel()
        future.add_done_callback(_consume)
        raise
    if not done:
        future.cancel()
        future.add_done_callback(_consume)
        raise _TimedOut
    return future.result()


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's exception so asyncio does not log 'never retrieved'."""
    if not future.cancelled():
        future.exception()


def _in_daemon_thread(check: HealthCheck) -> asyncio.Future[Any]:
    """Run a sync check on its own daemon thread and deliver its return value or exception to the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, payload: Any) -> None:
        if future.done():  # the check timed out and was abandoned
            if inspect.iscoroutine(payload):
                payload.close()
            return
        if ok:
            future.set_result(payload)
        else:
            future.set_exception(payload)

    def target() -> None:
        payload: Any
        try:
            payload, ok = check.fn(), True
        except Exception as exc:  # noqa: BLE001 - delivered to the loop, where it becomes a failed check
            payload, ok = exc, False
        except BaseException as exc:  # noqa: BLE001 - SystemExit in a worker thread cannot stop anything: a failure
            payload, ok = CheckResult("fail", describe_exception(exc)), True
        try:
            loop.call_soon_threadsafe(deliver, ok, payload)
        except RuntimeError:  # the loop closed while this abandoned check was still running
            if inspect.iscoroutine(payload):
                payload.close()

    threading.Thread(target=target, name=f"buttress-health-{check.name}", daemon=True).start()
    return future
