"""The HTTP side: upload an episode, follow or cancel its job, read a show's results; buttress's ops routes.

An upload streams through ``Uploads`` (size limit, type by content, the show's quota) before the handler
runs: a refused upload stores nothing and queues nothing. An accepted one becomes one job, its priority
from the form; a full queue (``QueueFull``, 503) deletes the file it just stored, so nothing is orphaned.
``install(app)`` mounts the ops server under ``/ops`` (``/ops/queue/stats``, ``/ops/storage/stats``, the
dashboard) and answers buttress's errors as problem+json.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request
from sqlalchemy import select

from buttress.container import get_container
from buttress.db import Database
from buttress.errors import QueueFull, ValidationError
from buttress.files import FileStore, Uploaded, Uploads, get_files
from buttress.jobs import get_jobs
from buttress.server import install
from examples.podpromo.pipeline import process_episode
from examples.podpromo.tables import create_tables, results

__all__ = ["ALLOWED_TYPES", "MAX_EPISODE_SIZE", "create_app"]

ALLOWED_TYPES: Final = ("audio/mpeg", "audio/x-wav", "audio/wav", "audio/ogg", "audio/flac")
MAX_EPISODE_SIZE: Final = 2_000_000
"""Bytes per upload; the per-show quota is ``BUTTRESS_FILES__OWNER_QUOTA``."""


def _show(request: Request) -> str:
    return str(request.path_params["show"])


def _priority(text: str) -> int:
    try:
        return int(text or 0)
    except ValueError:
        raise ValidationError(
            f"priority must be an integer, got {text!r}; e.g. priority=10", field="priority"
        ) from None


def create_app(store: FileStore | None = None) -> FastAPI:
    """The podpromo app on ``store`` (default: the process's store, ``get_files()``)."""
    files = store or get_files()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        create_tables(get_container().resolve(Database))
        yield

    app = FastAPI(title="podpromo", lifespan=lifespan)
    episodes = Uploads(
        files, field="episode", max_size=MAX_EPISODE_SIZE, allowed_types=ALLOWED_TYPES, owner=_show
    )

    @app.post("/shows/{show}/episodes", status_code=202)
    async def upload(show: str, upload: Annotated[Uploaded, Depends(episodes)]) -> dict[str, Any]:
        stored = upload.files[0]
        priority = _priority(upload.fields.get("priority", "0"))
        try:
            handle = await process_episode.configure(priority=priority, key=f"episode:{stored.id}").adefer(
                stored.id, show
            )
        except QueueFull:
            await files.adelete(stored.id)  # all or nothing: no file without its job
            raise
        return {"file": stored.id, "job": handle.id, "size": stored.size, "type": stored.content_type}

    @app.get("/jobs/{job_id}")
    async def status(job_id: int) -> dict[str, Any]:
        info = await get_jobs().aget(job_id)
        return {
            "job": info.id,
            "status": info.status.value,
            "progress": info.progress,
            "message": info.message,
        }

    @app.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: int) -> dict[str, Any]:
        return {"job": job_id, "status": (await get_jobs().acancel(job_id)).value}

    @app.get("/shows/{show}/results")
    async def show_results(show: str) -> list[dict[str, Any]]:
        db = get_container().resolve(Database)
        query = select(results).where(results.c.show == show).order_by(results.c.finished_at.desc())
        async with db.asession(read_only=True) as session:
            return [dict(row._mapping) for row in await session.execute(query)]

    install(app)
    return app
