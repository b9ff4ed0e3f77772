"""The astrology API: FastAPI routes on buttress, and the ops routes mounted under ``/ops``.

``create_app()`` wires everything from the process's settings: ``install(app)`` adds the ops routes
(health, metrics, ``/ops/profiler``, ``/ops/breakers``, ``/ops/cache``, ``/ops/db``, admin switches),
the request middleware and problem+json errors; the realtime router carries batch progress and reading
channels; the cache warmer is registered before startup so the ops lifespan warms it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, Field

from buttress.config import Settings, get_settings
from buttress.errors import ButtressError
from buttress.server import install

from .batch import compute_batch
from .channels import channel_router, issue_token
from .horoscope import daily, horoscopes, register_warmer
from .store import by_birth_date, create_tables, database, discard, get_reading, save_pending
from .zodiac import PROFILER, SIGNS, check_sign, sign_for, today

__all__ = ["create_app", "effective_settings"]


class Person(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    birth_date: date


class BatchRequest(BaseModel):
    people: list[Person] = Field(min_length=1, max_length=500)


def effective_settings(settings: Settings) -> Settings:
    """``settings`` with error details (an error's context and traceback) shown in development only.

    buttress leaves ``server.expose_details`` off by default whatever the environment; this app turns it
    on when ``BUTTRESS_APP__ENVIRONMENT`` is ``development`` (the default), and nowhere else.
    """
    if settings.app.environment != "development" or settings.server.expose_details:
        return settings
    server = settings.server.model_copy(update={"expose_details": True})
    return settings.model_copy(update={"server": server})


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await asyncio.to_thread(create_tables, database())
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app on ``settings`` (default: the process's, from ``BUTTRESS_*`` variables)."""
    settings = effective_settings(settings if settings is not None else get_settings())
    app = FastAPI(title="astrology", lifespan=_lifespan)
    register_warmer(horoscopes())
    _routes(app, settings)
    app.include_router(channel_router(settings), prefix="/realtime")
    install(app, settings, profiler=PROFILER)  # /ops/profiler reports and switches the app's profiler
    return app


def _routes(app: FastAPI, settings: Settings) -> None:
    @app.get("/signs")
    def signs() -> list[str]:
        return list(SIGNS)

    @app.get("/signs/{sign}/daily")
    def daily_horoscope(sign: str, day: date | None = None) -> dict[str, Any]:
        return daily(check_sign(sign), day or today())

    @app.post("/batches", status_code=202)
    def create_batch(request: BatchRequest) -> dict[str, Any]:
        people = [(p.name, p.birth_date, sign_for(p.birth_date)) for p in request.people]
        db = database()
        ids = save_pending(db, people)
        try:
            handle = compute_batch.defer(ids)  # QueueFull (503) past 1,000 waiting batches
        except ButtressError:
            discard(db, ids)  # nothing half-written: no reading is left without a job to compute it
            raise
        token = issue_token(settings, f"batch-{handle.id}", jobs=[handle.id], readings=ids)
        return {"job_id": handle.id, "readings": ids, "token": token}

    @app.get("/readings")
    def readings_born_on(birth_date: Annotated[date, Query()]) -> list[dict[str, Any]]:
        return by_birth_date(database(), birth_date)

    @app.get("/readings/{reading_id}")
    def reading(reading_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> dict[str, Any]:  # a BIGINT: else 422
        return get_reading(database(), reading_id)
