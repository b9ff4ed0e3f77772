"""The public API is curated: adding or removing a top-level name is a decision, made here."""

from __future__ import annotations

import subprocess
import sys

import buttress

CURATED = [
    "SYSTEM_CLOCK",
    "BackendUnavailable",
    "BulkheadFull",
    "ButtressError",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "ConflictError",
    "Container",
    "ContainerError",
    "DeadlineExceeded",
    "DependencyCycle",
    "Event",
    "EventBus",
    "FakeClock",
    "Lifetime",
    "NotFoundError",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "RetryExhausted",
    "Scope",
    "ScopeRequired",
    "ServiceNotRegistered",
    "Settings",
    "Subscription",
    "SystemClock",
    "ValidationError",
    "bind_context",
    "configure_logging",
    "get_container",
    "get_event_bus",
    "get_logger",
    "get_settings",
    "load_settings",
    "publish",
    "subscribe",
]


def test_all_is_the_curated_list() -> None:
    assert buttress.__all__ == CURATED


def test_all_is_sorted_and_every_name_exists() -> None:
    assert buttress.__all__ == sorted(buttress.__all__, key=lambda n: (not n.isupper(), n))
    for name in buttress.__all__:
        assert getattr(buttress, name) is not None


def test_importing_buttress_does_not_load_the_heavy_capabilities() -> None:
    heavy = ("fastapi", "sqlalchemy", "httpx", "prometheus_client", "psutil")
    code = f"import sys, buttress; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


RESILIENCE = [
    "UNAVAILABLE",
    "Backoff",
    "BackoffKind",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStore",
    "BudgetSnapshot",
    "BudgetStore",
    "Bulkhead",
    "BulkheadSnapshot",
    "CircuitBreaker",
    "Fallback",
    "Hedge",
    "Jitter",
    "LimiterSnapshot",
    "LimiterStore",
    "MemoryBreakerStore",
    "MemoryBudgetStore",
    "MemoryLimiterStore",
    "Permit",
    "Pipeline",
    "Rate",
    "RateLimiter",
    "RedisBreakerStore",
    "RedisBudgetStore",
    "RedisLimiterStore",
    "RedisState",
    "Retry",
    "RetryBudget",
    "RetryStats",
    "StoreInfo",
    "StorePolicy",
    "Telemetry",
    "Timeout",
    "build_breaker",
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


def test_resilience_all_is_the_curated_list() -> None:
    """The store protocols and their Memory/Redis implementations are public, named alike."""
    from buttress import resilience

    assert resilience.__all__ == RESILIENCE
    for name in resilience.__all__:
        assert getattr(resilience, name) is not None


DB = [
    "DEFAULT_URL",
    "VERSION_TABLE",
    "AdviceReport",
    "BulkResult",
    "Consistency",
    "Database",
    "DbAdviceReport",
    "DbStatsReport",
    "Fingerprint",
    "IndexAdvice",
    "Isolation",
    "MigrationStatus",
    "NPlusOneIncident",
    "Page",
    "Plan",
    "PlanRunner",
    "PoolStats",
    "QueryCache",
    "QueryScope",
    "QueryTracker",
    "RawSample",
    "ReplicaRouter",
    "Rows",
    "Sample",
    "SchemaGate",
    "Skipped",
    "SlowStatement",
    "StatementStats",
    "Step",
    "advice_report",
    "apaginate",
    "consistent",
    "db_stats",
    "fingerprint",
    "health_checks",
    "internal_options",
    "is_retryable",
    "normalise",
    "paginate",
    "query_scope",
    "register_services",
    "translate",
]


def test_db_all_is_the_curated_list() -> None:
    from buttress import db

    assert db.__all__ == DB
    for name in db.__all__:
        assert getattr(db, name) is not None


JOBS = [
    "REGISTRY",
    "WARM_QUEUE",
    "Deferral",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobHandle",
    "JobInfo",
    "JobStatus",
    "JobStore",
    "Jobs",
    "PostgresJobStore",
    "QueueSpec",
    "QueueStats",
    "Registry",
    "Schedule",
    "ScheduleSpec",
    "Scheduler",
    "SqliteJobStore",
    "Stats",
    "Task",
    "WarmFailed",
    "WarmTask",
    "Worker",
    "current_job",
    "define_queue",
    "describe_schedules",
    "get_jobs",
    "health_checks",
    "job",
    "register_services",
    "schedule",
    "schedule_warmer",
    "warm_job",
]


def test_jobs_all_is_the_curated_list() -> None:
    from buttress import jobs

    assert jobs.__all__ == JOBS
    for name in jobs.__all__:
        assert getattr(jobs, name) is not None


FILES = [
    "HEAD_SIZE",
    "AsyncUpload",
    "BlobStore",
    "BlobWriter",
    "CleanupAction",
    "CleanupReport",
    "CleanupTask",
    "FileState",
    "FileStore",
    "Leftover",
    "LocalBlobStore",
    "Retention",
    "S3BlobStore",
    "ScopeUsage",
    "StorageStats",
    "StoredFile",
    "SweepReport",
    "TypeDetector",
    "Upload",
    "Uploaded",
    "Uploads",
    "cleanup_job",
    "get_files",
    "health_checks",
    "register_services",
    "safe_name",
    "schedule_cleanup",
    "scheduled_rules",
    "upload_route",
]


def test_files_all_is_the_curated_list() -> None:
    from buttress import files

    assert files.__all__ == FILES
    for name in files.__all__:
        assert getattr(files, name) is not None


REALTIME = [
    "Authorize",
    "Entry",
    "Identity",
    "MemoryTopicLog",
    "Position",
    "Realtime",
    "RedisTopicLog",
    "Replay",
    "TopicLog",
    "covers",
    "create_realtime",
    "get_realtime",
    "health_checks",
    "parse_id",
    "realtime_router",
    "register_services",
    "set_realtime",
]


def test_realtime_all_is_the_curated_list() -> None:
    from buttress import realtime

    assert realtime.__all__ == REALTIME
    for name in realtime.__all__:
        assert getattr(realtime, name) is not None
