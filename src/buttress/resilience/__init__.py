"""Resilience strategies: retry, circuit breaker, rate limiter, bulkhead, timeout, hedge, fallback, pipeline.

State that must be shared between processes (breakers, limiters, the retry budget) lives in a store: memory
by default, or Redis through :class:`RedisState`, where each change is one atomic Lua script.
"""

from buttress.resilience._redis_state import UNAVAILABLE, RedisState, StorePolicy
from buttress.resilience._telemetry import Telemetry

__all__ = ["UNAVAILABLE", "RedisState", "StorePolicy", "Telemetry"]
