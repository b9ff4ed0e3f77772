"""A read session that moves to another server when its replica dies under it, so no read is lost.

``db.session(read_only=True)`` is a :class:`ReadSession` bound to the server the router chose. Every
statement the ORM or Core runs goes through ``Session._execute_internal`` (``execute``, ``scalars``,
``scalar``, ``get``, lazy loads); when one fails because the replica went away (a refused connect, a
connection lost mid-statement, a shutdown) or because the standby cancelled it for a conflict with replay,
the session rolls back its (read-only) transaction, the router picks another replica or the primary that
has replayed at least what the first one had shown, the session is re-bound and the statement runs again.
Reads are safe to repeat; earlier results stay valid, since the new server is at least as far along.
Work done on ``session.connection()`` directly is outside this net.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import await_

from buttress.db._replica_set import replica_trouble

if TYPE_CHECKING:
    from buttress.db._replicas import ReplicaRouter, Target

__all__ = ["ROUTE", "ReadRoute", "ReadSession"]

ROUTE: Final = "buttress.replica_route"
"""The key of ``session.info`` holding the session's :class:`ReadRoute`."""


class ReadSession(Session):
    """A Session whose statements fail over to another server when the replica under them dies."""

    def _execute_internal(self, *args: Any, **kwargs: Any) -> Any:
        route: ReadRoute | None = self.info.get(ROUTE)
        while True:
            try:
                return super()._execute_internal(*args, **kwargs)
            except DBAPIError as exc:
                if route is None or not route.failover(self, exc):
                    raise


@dataclass(eq=False)
class ReadRoute:
    """Where a read session is and what it must see: the target, the WAL position, the servers left."""

    router: ReplicaRouter
    target: Target
    need: int
    isolation: str | None
    asynchronous: bool
    left: set[str] = field(default_factory=set)

    def failover(self, session: Session, error: DBAPIError) -> bool:
        """Move ``session`` off a replica that failed ``error``; False when the error is the read's own."""
        replica = self.target.replica
        if replica is None or not replica_trouble(error):
            return False
        self.need = max(self.need, self.target.seen)  # never step back behind what was already read
        self.router.leave(self.target, error)
        self.left.add(replica.name)
        session.rollback()
        if self.asynchronous:  # inside the AsyncSession's greenlet: the router's async path is awaited
            self.target = await_(self.router.aroute(self.need, self.left))
        else:
            self.target = self.router.route(self.need, self.left)
        session.bind = self.router.bind_for(self.target, self.isolation, asynchronous=self.asynchronous)
        return True

    def finish(self, session: Session) -> None:
        """Commit the read transaction; a replica dying at that point loses nothing already read."""
        try:
            session.commit()
        except DBAPIError as exc:
            self._commit_failed(exc)
            return
        self.router.done(self.target)

    async def afinish(self, session: AsyncSession) -> None:
        """Async :meth:`finish`."""
        try:
            await session.commit()
        except DBAPIError as exc:
            self._commit_failed(exc)
            return
        self.router.done(self.target)

    def _commit_failed(self, error: DBAPIError) -> None:
        """Swallow ``error`` when the replica went away after the reads were done; raise it otherwise."""
        if self.target.replica is None or not replica_trouble(error):
            self.router.settle(self.target, error)
            raise error
        self.router.leave(self.target, error, failover=False)

    def abandon(self, error: BaseException) -> None:
        """The block raised ``error``: the breaker hears of it (a failure only if the replica died)."""
        self.router.settle(self.target, error)
