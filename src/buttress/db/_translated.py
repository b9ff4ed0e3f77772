"""Engines whose errors arrive as buttress errors, for sessions buttress hands out but does not wrap.

``db.session()`` and ``db.transaction()`` translate errors where they catch them (and must see SQLAlchemy's
own errors first, to classify what to retry). A session resolved from a container scope is the caller's to
drive, so its engine carries an execution option that a ``handle_error`` listener reads to replace
SQLAlchemy's error with the buttress one (unique violation: ``ConflictError``; statement timeout:
``DeadlineExceeded``; ...). Engines without the option are untouched.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from buttress.db._errors import translate

__all__ = ["TRANSLATE_OPTION", "translated"]

TRANSLATE_OPTION: Final = "buttress_translate_errors"
E = TypeVar("E", Engine, AsyncEngine)


def translated(engine: E, backend: str) -> E:
    """A copy of ``engine`` (same pool) whose statement errors are buttress errors."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    def to_buttress(context: Any) -> BaseException | None:
        connection = context.connection
        if connection is None or not connection.get_execution_options().get(TRANSLATE_OPTION):
            return None
        mapped = translate(context.sqlalchemy_exception, backend=backend)
        return None if mapped is context.sqlalchemy_exception else mapped

    event.listen(sync_engine, "handle_error", to_buttress)
    return engine.execution_options(**{TRANSLATE_OPTION: True})
