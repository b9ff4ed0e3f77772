"""What the data layer offers the composition root: its container registration and its health check.

No ``from __future__ import annotations``: the factories are defined after their types are imported, so
the container's wiring reads real classes from their annotations.
"""

from typing import TYPE_CHECKING

from buttress.container import Container, Lifetime

if TYPE_CHECKING:
    from buttress.config import Settings
    from buttress.observe.health import HealthCheck

__all__ = ["health_checks", "register_services"]


def register_services(container: Container) -> None:
    """Register the process-wide :class:`Database` and one session per scope.

    ``Database`` is a singleton built from ``Settings`` on first resolve; the container closes it
    (:meth:`Container.close` disposes of the sync pool, :meth:`Container.aclose` of both). ``Session`` and
    ``AsyncSession`` are SCOPED: every resolve inside one ``container.scope()`` (a request, a job) gets the
    same session on the database's engine, and the scope's exit closes it, rolling back whatever the code
    did not commit. Committing stays explicit (``session.commit()``), as SQLAlchemy has it; errors arrive
    as buttress errors, as from ``db.session()``.
    """
    from sqlalchemy.ext.asyncio import AsyncSession  # noqa: PLC0415 - registering must not import SQLAlchemy early
    from sqlalchemy.orm import Session  # noqa: PLC0415 - registering must not import SQLAlchemy early

    from buttress.config import Settings  # noqa: PLC0415 - config is optional for library users
    from buttress.db._database import Database  # noqa: PLC0415 - registering must not import SQLAlchemy early

    def default_database(settings: Settings) -> Database:
        return Database.from_settings(settings)

    def scope_session(db: Database) -> Session:
        return Session(db.scoped_engine, expire_on_commit=False)

    def scope_async_session(db: Database) -> AsyncSession:
        return AsyncSession(db.scoped_async_engine, expire_on_commit=False)

    container.register(Database, default_database)
    container.register(Session, scope_session, Lifetime.SCOPED)
    container.register(AsyncSession, scope_async_session, Lifetime.SCOPED)


def health_checks(container: Container, settings: "Settings") -> "list[HealthCheck]":
    """The ``database`` check (critical), and ``database_replicas`` (not critical) with replicas set.

    Only when ``BUTTRESS_DATABASE_URL`` is set. ``database`` runs :meth:`Database.check` on the
    container's database, so it probes the pool the service uses; a failure reads
    ``BackendUnavailable: ...`` with the password masked. ``database_replicas`` measures every replica's
    lag and warns when one lags past ``max_lag``, failed its check or is cut off by its breaker: reads
    still work (they go elsewhere), so it never makes the service unready. Without a URL the database is the
    embedded SQLite file, which nothing outside the process can take away: no check (probing it would
    create the file).
    """
    if not settings.database_url:
        return []
    from buttress.db._database import Database  # noqa: PLC0415 - built on the first probe, not before
    from buttress.health_types import CheckResult  # noqa: PLC0415 - only the composition root calls this
    from buttress.observe.health import HealthCheck  # noqa: PLC0415 - only the composition root calls this

    def replicas() -> CheckResult:
        status = container.resolve(Database).replicas.check()
        lagging = [row for row in status if not row["healthy"] or row["last_error"]]
        worst = max((row["lag_seconds"] or 0.0 for row in status), default=0.0)
        if not lagging:
            return CheckResult("pass", observed_value=worst, observed_unit="s")
        names = ", ".join(
            f"{row['name']} ({row['last_error'] or 'lag ' + str(row['lag_seconds']) + ' s'})"
            for row in lagging
        )
        return CheckResult(
            "warn",
            f"reads avoid {names}: they go to another replica or the primary until it is back",
            observed_value=worst,
            observed_unit="s",
        )

    checks = [
        HealthCheck(
            name="database",
            fn=lambda: container.resolve(Database).check(),
            critical=True,
            component_type="datastore",
        )
    ]
    if settings.db.replicas:
        checks.append(
            HealthCheck(name="database_replicas", fn=replicas, critical=False, component_type="datastore")
        )
    return checks
