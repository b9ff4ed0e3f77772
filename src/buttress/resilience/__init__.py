"""Resilience strategies: retry, circuit breaker, rate limiter, bulkhead, timeout, hedge, fallback, pipeline.

Each strategy works alone, as a decorator (sync or async functions and methods, types kept), ``call`` or
``acall``; a :class:`Pipeline` composes them in one documented order. Breakers, limiters and retry budgets
keep their state in memory or, through :class:`RedisState`, in Redis, where each change is one atomic Lua
script and an outage follows a declared policy (``local``, ``open`` or ``closed``).
"""

from buttress.rate import Rate
from buttress.resilience._backoff import Backoff, BackoffKind, Jitter
from buttress.resilience._breaker import BreakerSnapshot, BreakerState, CircuitBreaker, Permit, live_breakers
from buttress.resilience._breaker_registry import BreakerRegistry
from buttress.resilience._budget import BudgetSnapshot, RetryBudget
from buttress.resilience._bulkhead import Bulkhead, BulkheadSnapshot
from buttress.resilience._defaults import (
    build_pipeline,
    get_breakers,
    get_pipeline,
    get_resilience_store,
    reset_resilience,
)
from buttress.resilience._fallback import Fallback
from buttress.resilience._hedge import Hedge
from buttress.resilience._limiter import LimiterSnapshot, RateLimiter, live_limiters
from buttress.resilience._pipeline import Pipeline
from buttress.resilience._provide import health_checks, register_services
from buttress.resilience._redis_state import UNAVAILABLE, RedisState, StorePolicy
from buttress.resilience._retry import Retry, RetryStats, retry_stats
from buttress.resilience._timeout import Timeout

__all__ = [
    "UNAVAILABLE",
    "Backoff",
    "BackoffKind",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BudgetSnapshot",
    "Bulkhead",
    "BulkheadSnapshot",
    "CircuitBreaker",
    "Fallback",
    "Hedge",
    "Jitter",
    "LimiterSnapshot",
    "Permit",
    "Pipeline",
    "Rate",
    "RateLimiter",
    "RedisState",
    "Retry",
    "RetryBudget",
    "RetryStats",
    "StorePolicy",
    "Timeout",
    "build_pipeline",
    "get_breakers",
    "get_pipeline",
    "get_resilience_store",
    "health_checks",
    "live_breakers",
    "live_limiters",
    "register_services",
    "reset_resilience",
    "retry_stats",
]
