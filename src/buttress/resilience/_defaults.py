"""The process-wide resilience objects built from settings: the store, keyed breakers, named pipelines.

They live in one :class:`ResilienceDefaults` owned by the default container; the ``get_*`` functions
are thin wrappers over it.

``get_pipeline("spotify")`` builds the pipeline configured under
``BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__...`` (defaults for every knob left out) on first use and
returns the same object afterwards, so every caller shares its breaker, limiter and budget. With
``BUTTRESS_RESILIENCE__STORE=redis`` their state lives in Redis and every process shares it too. A name
that is not configured is refused (a misspelt name would otherwise get a pipeline of its own, with its
own breaker, and nobody would notice); ``get_pipeline(name, defaults=True)`` asks for the defaults on
purpose.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from typing import TYPE_CHECKING, Any, Literal

from buttress.container import get_container
from buttress.errors import ConfigError, ConfigProblem, ValidationError
from buttress.resilience._backoff import Backoff
from buttress.resilience._breaker import CircuitBreaker
from buttress.resilience._breaker_registry import BreakerRegistry
from buttress.resilience._budget import RetryBudget
from buttress.resilience._bulkhead import Bulkhead
from buttress.resilience._decorate import check_name
from buttress.resilience._limiter import RateLimiter
from buttress.resilience._pipeline import Pipeline
from buttress.resilience._redis_state import RedisState
from buttress.resilience._retry import Retry
from buttress.resilience._timeout import Timeout

if TYPE_CHECKING:
    from buttress.config import BreakerSettings, PipelineSettings, Settings

__all__ = [
    "ResilienceDefaults",
    "build_breaker",
    "build_pipeline",
    "get_breakers",
    "get_pipeline",
    "get_resilience_store",
    "reset_resilience",
]


class ResilienceDefaults:
    """The process-wide store, keyed breakers and named pipelines built from one ``Settings``.

    One per container (``get_container().resolve(ResilienceDefaults)``), each part built on first use
    and then shared; :meth:`close` closes the Redis store (the container calls it).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.RLock()
        self._store: RedisState | None = None
        self._store_built = False
        self._breakers: BreakerRegistry | None = None
        self._pipelines: dict[str, Pipeline] = {}

    @property
    def store(self) -> RedisState | None:
        """The Redis store (``BUTTRESS_RESILIENCE__STORE=redis``), or None for memory."""
        with self._lock:
            if not self._store_built:
                settings = self._settings
                resilience = settings.resilience
                if resilience.store == "redis" and settings.redis_url:
                    self._store = RedisState(
                        settings.redis_url, prefix=resilience.prefix, policy=resilience.redis_policy
                    )
                self._store_built = True
            return self._store

    @property
    def breakers(self) -> BreakerRegistry:
        """The keyed breaker registry over :attr:`store`."""
        with self._lock:
            if self._breakers is None:
                store = self.store
                self._breakers = BreakerRegistry(store=store if store is not None else "memory")
            return self._breakers

    def pipeline(self, name: str, *, defaults: bool = False) -> Pipeline:
        """The pipeline configured under ``name``, built once; see :func:`get_pipeline`."""
        configured = self._settings.resilience.pipelines.get(check_name(name).lower())
        if configured is None and defaults is not True:
            raise _unknown_pipeline(name, sorted(self._settings.resilience.pipelines), defaults)
        with self._lock:
            pipeline = self._pipelines.get(name)
            if pipeline is None:
                if configured is None:
                    from buttress.config import PipelineSettings  # noqa: PLC0415 - pydantic, only with settings

                    configured = PipelineSettings()
                pipeline = self._pipelines[name] = build_pipeline(name, configured, store=self.store)
            return pipeline

    def close(self) -> None:
        """Close the Redis store, if one was built; breakers and pipelines hold nothing else."""
        with self._lock:
            store, self._store, self._store_built = self._store, None, False
            self._breakers = None
            self._pipelines.clear()
        if store is not None:
            store.close()


def get_resilience_store() -> RedisState | None:
    """The Redis store from settings (``BUTTRESS_RESILIENCE__STORE=redis``), or None for memory."""
    return get_container().resolve(ResilienceDefaults).store


def get_breakers() -> BreakerRegistry:
    """The process-wide keyed breaker registry (``get_breakers().get("api.example.com")``)."""
    return get_container().resolve(ResilienceDefaults).breakers


def get_pipeline(name: str, *, defaults: bool = False) -> Pipeline:
    """The named pipeline from settings, built once per process and shared by every caller.

    A name with no ``BUTTRESS_RESILIENCE__PIPELINES__<NAME>__...`` setting is a ValidationError listing the
    configured names, so a misspelt name fails at once; ``defaults=True`` gives such a name the default
    policies (retry, breaker and budget) on purpose.
    """
    return get_container().resolve(ResilienceDefaults).pipeline(name, defaults=defaults)


def reset_resilience() -> None:
    """Close and forget the process-wide store, breakers and pipelines (tests; after changing settings)."""
    get_container().reset(ResilienceDefaults)


def _unknown_pipeline(name: str, known: list[str], defaults: object) -> ValidationError:
    if defaults is not False:
        return ValidationError(f"defaults must be True or False, got {defaults!r}", field="defaults")
    close = difflib.get_close_matches(name.lower(), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    listed = ", ".join(repr(k) for k in known) if known else "none"
    variable = f"BUTTRESS_RESILIENCE__PIPELINES__{name.upper()}__RETRY__ATTEMPTS=3"
    return ValidationError(
        f"no pipeline named {name!r} is configured (configured: {listed}){hint} Configure it in the "
        f"environment (e.g. {variable}), or ask for the default policies on purpose: "
        f"get_pipeline({name!r}, defaults=True)",
        field="name",
    )


def build_pipeline(name: str, settings: PipelineSettings, *, store: RedisState | None = None) -> Pipeline:
    """A pipeline from one :class:`~buttress.config.PipelineSettings` (what :func:`get_pipeline` uses)."""
    state: RedisState | Literal["memory"] = store if store is not None else "memory"
    retry_settings = settings.retry
    budget = (
        RetryBudget(ratio=retry_settings.budget_ratio, name=name, store=state)
        if retry_settings.budget_ratio is not None
        else None
    )
    retry = Retry(
        on=_exception_types(name, retry_settings.on),
        attempts=retry_settings.attempts,
        deadline=retry_settings.deadline,
        backoff=Backoff(
            kind=retry_settings.backoff,
            initial=retry_settings.initial_delay,
            max_delay=retry_settings.max_delay,
            jitter=retry_settings.jitter,
        ),
        budget=budget,
        name=name,
    )
    breaker = build_breaker(name, settings.breaker, store=state)
    limiter_settings = settings.limiter
    limiter = None
    if limiter_settings.rate is not None:
        limiter = RateLimiter(
            limiter_settings.rate,
            burst=limiter_settings.burst,
            max_wait=limiter_settings.max_wait,
            name=name,
            store=state,
        )
    bulkhead_settings = settings.bulkhead
    bulkhead = None
    if bulkhead_settings.max_concurrent is not None:
        bulkhead = Bulkhead(
            bulkhead_settings.max_concurrent,
            max_queued=bulkhead_settings.max_queued,
            max_wait=bulkhead_settings.max_wait,
            name=name,
        )
    timeout = Timeout(settings.timeout, name=name) if settings.timeout is not None else None
    return Pipeline(name, retry=retry, breaker=breaker, limiter=limiter, bulkhead=bulkhead, timeout=timeout)


def build_breaker(name: str, settings: BreakerSettings, **wiring: Any) -> CircuitBreaker | None:
    """The breaker one :class:`~buttress.config.BreakerSettings` describes, or None when it is disabled.

    ``wiring`` is what settings do not hold: ``store``, ``clock``, ``metrics``, ``events``.
    """
    if not settings.enabled:
        return None
    return CircuitBreaker(name, **settings.model_dump(exclude={"enabled"}), **wiring)


def _exception_types(name: str, paths: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """Import ``module.Class`` paths; a path that does not name an exception class is a ConfigError."""
    from buttress.config import env_var_name  # noqa: PLC0415 - pydantic, only with settings

    variable = env_var_name(("resilience", "pipelines", name, "retry", "on"))
    found: list[type[BaseException]] = []
    for path in paths:
        module_name, _, attribute = path.rpartition(".")
        try:
            candidate = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            candidate = exc
        if not (isinstance(candidate, type) and issubclass(candidate, BaseException)):
            raise ConfigError(
                "Invalid buttress configuration",
                problems=[
                    ConfigProblem(
                        variable,
                        path,
                        "import paths of exception classes (module.Class) that can be imported here",
                        '["builtins.ConnectionError", "httpx.TransportError"]',
                    )
                ],
            )
        found.append(candidate)
    return tuple(found)
