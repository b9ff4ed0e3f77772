"""The composition root: buttress's default container plus the music services, and the two use cases."""

from __future__ import annotations

from buttress.container import Container, get_container
from buttress.db import BulkResult, Database
from examples.music.plays import generate_plays, save_plays, summary
from examples.music.services import Listening, MusicSettings, ReportBuilder, register_music
from examples.music.tables import create_schema

__all__ = ["import_plays", "music_container", "summary_report"]


def music_container() -> Container:
    """The process's container (Database, Cache, HttpClient from BUTTRESS_*), with the app registered."""
    container = get_container()
    if not container.is_registered(Listening):
        register_music(container)
        create_schema(container.resolve(Database))
    return container


def import_plays(n: int, *, seed: int = 0) -> BulkResult:
    """Generate ``n`` plays and bulk-save them."""
    db = music_container().resolve(Database)
    return save_plays(db, generate_plays(n, seed=seed))


def summary_report(user_id: str) -> str:
    """The user's summary as text, one request: its own scope, a fresh ReportBuilder."""
    container = music_container()
    top = container.resolve(MusicSettings).top
    with container.scope(f"summary {user_id}"):
        rows = summary(container.resolve(Database), user_id, top=top)
        return container.resolve(ReportBuilder).add_summary(user_id, rows).render()
