"""Names that cannot collide: a strategy whose state is shared gets an explicit name or its function's.

A name is the Redis key of a shared store and the ``key`` label of its metrics, so two strategies with
one name share both. A strategy with a shared store (Redis) and no ``name`` takes the qualified name of
the function it decorates (``module.qualname``) when it decorates it; until then it holds a
:class:`Unnamed` store that refuses every call with a :class:`~buttress.errors.ValidationError` saying
to pass ``name=``. A derived name is claimed for the process: a second live strategy of the same kind
deriving the same name (a decorator applied in a loop, say) is refused rather than silently sharing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, NoReturn

from buttress.errors import ValidationError
from buttress.health_types import CheckResult
from buttress.resilience._decorate import MAX_NAME, check_name
from buttress.resilience._stores import StoreInfo

__all__ = ["UNNAMED", "Unnamed", "claim_derived", "derived_name", "unnamed_error"]

UNNAMED: Final = "unnamed"
"""The placeholder name of a shared strategy until it decorates a function."""

_claims: dict[str, weakref.WeakValueDictionary[str, Any]] = {}
_claims_lock = threading.Lock()


def unnamed_error(strategy: str) -> ValidationError:
    """What a shared strategy without a name raises when it is used before it decorates anything."""
    hint = (
        ""
        if strategy == "budget"
        else ", or use it as a decorator (it then takes the function's module.qualname)"
    )
    return ValidationError(
        f"this {strategy} keeps its state in a shared store (Redis) and has no name, so it cannot tell "
        f"whose state is whose: pass name=, e.g. {strategy_class(strategy)}(..., name='payments-api')" + hint,
        field="name",
    )


def strategy_class(strategy: str) -> str:
    return {"breaker": "CircuitBreaker", "limiter": "RateLimiter", "budget": "RetryBudget"}[strategy]


def derived_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of the decorated function, checked as a name."""
    module = getattr(fn, "__module__", None) or "__main__"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    name = f"{module}.{qualname}"
    if len(name) > MAX_NAME:
        raise ValidationError(
            f"the derived name {name[:60]!r}... is longer than {MAX_NAME} characters; pass name= explicitly",
            field="name",
        )
    return check_name(name)


def claim_derived(strategy: str, name: str, owner: object) -> None:
    """Claim a derived ``name`` for ``owner``; another live strategy of the kind holding it is refused."""
    with _claims_lock:
        claims = _claims.setdefault(strategy, weakref.WeakValueDictionary())
        holder = claims.get(name)
        if holder is not None and holder is not owner:
            raise ValidationError(
                f"two {strategy_class(strategy)}s with a shared store both decorate functions named "
                f"{name!r} and neither has a name, so they would share one state and one metric label; "
                f"pass name= to each (e.g. name='{name}-1')",
                field="name",
            )
        claims[name] = owner


class Unnamed:
    """The store of a shared strategy that has no name yet: every use raises ``unnamed_error``."""

    kind = "redis"
    shared = True

    def __init__(self, strategy: str, known_state: object = None) -> None:
        self._strategy = strategy
        self.known_state = known_state

    def __getattr__(self, attribute: str) -> NoReturn:
        raise unnamed_error(self._strategy)

    def keys(self) -> list[str]:
        return []

    def info(self) -> StoreInfo:
        return StoreInfo(self.kind, shared=True, available=True, detail="no name yet: pass name=")

    def check(self) -> CheckResult:
        return CheckResult("warn", str(unnamed_error(self._strategy)))
