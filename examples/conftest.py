"""The examples' tests share the main suite's service fixtures: a real Redis and PostgreSQL, skipped when
unreachable and failed under ``BUTTRESS_REQUIRE_SERVICES=1``, and ``isolated_settings`` (no BUTTRESS_*
variable, an empty working directory, a fresh container)."""

from __future__ import annotations

from tests.conftest import (
    database_url,
    isolated_settings,
    need_service,
    redis_client,
    redis_url,
    services_required,
    upstream,
    upstream_factory,
)

__all__ = [
    "database_url",
    "isolated_settings",
    "need_service",
    "redis_client",
    "redis_url",
    "services_required",
    "upstream",
    "upstream_factory",
]
