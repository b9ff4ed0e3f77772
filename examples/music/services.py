"""The services and their lifetimes, wired by ``buttress.container`` from the type hints.

- SINGLETON: :class:`MusicSettings` and the :class:`Catalog` API client (one pooled client per process),
  beside buttress's own ``Database``, ``Cache`` and ``HttpClient``;
- SCOPED: :class:`Listening`, one request's unit of work on the request's ``Session`` (closed, and rolled
  back if not committed, when the scope ends);
- TRANSIENT: :class:`ReportBuilder`, which accumulates lines, so every user gets a fresh one.

No ``from __future__ import annotations`` here: the container reads these annotations at run time.
"""

from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from buttress.cache import cached
from buttress.container import Container, Lifetime
from buttress.errors import ConfigError, ConfigProblem
from buttress.http import HttpClient
from examples.music.tables import Play

__all__ = ["Catalog", "Listening", "MusicSettings", "ReportBuilder", "register_music"]


class MusicSettings(BaseSettings):
    """The app's own settings (``MUSIC_*``); buttress's stay under ``BUTTRESS_*``."""

    model_config = SettingsConfigDict(env_prefix="MUSIC_", frozen=True)
    catalog_url: str = "https://catalog.music.example"
    top: int = Field(5, ge=1, le=100)
    """Rows in a summary."""


def load_music_settings() -> MusicSettings:
    """The settings, or a ConfigError naming each bad ``MUSIC_*`` variable and the fix."""
    try:
        return MusicSettings()
    except pydantic.ValidationError as exc:
        problems = [
            ConfigProblem(
                f"MUSIC_{'_'.join(str(part) for part in error['loc']).upper()}",
                str(error.get("input")),
                error["msg"].lower(),
                example="10" if error["loc"] == ("top",) else None,
            )
            for error in exc.errors()
        ]
        raise ConfigError("the music settings are invalid", problems=problems) from None


class Catalog:
    """The catalogue API (artists' names and genres) through the process's pooled, retrying client."""

    def __init__(self, settings: MusicSettings, http: HttpClient) -> None:
        self.base = settings.catalog_url.rstrip("/")
        self.http = http

    @cached(ttl=3600, key="artist:{artist_id}", namespace="music")  # self is never part of the key
    def artist(self, artist_id: str) -> dict[str, Any]:
        """An artist's profile: one request per artist an hour, in every process sharing the cache."""
        document = self.http.get(f"{self.base}/artists/{artist_id}").json()
        return {"id": artist_id, "source": document.get("path", "")}


class Listening:
    """One request's unit of work: its writes and reads share the scope's session and transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, play: dict[str, Any]) -> None:
        self.session.execute(insert(Play), [play])

    def plays_of(self, users: Sequence[str]) -> list[dict[str, Any]]:
        """Every play of several users in one query, oldest first (the bulk read)."""
        query = select(Play.__table__).where(Play.user_id.in_(users)).order_by(Play.played_at, Play.id)
        return [dict(row) for row in self.session.execute(query).mappings()]

    def commit(self) -> None:
        self.session.commit()  # the query-result cache drops every summary reading music_plays


class ReportBuilder:
    """Text for a user's summary; it keeps state between calls, hence TRANSIENT."""

    def __init__(self, settings: MusicSettings) -> None:
        self.top = settings.top
        self.lines: list[str] = []

    def add_summary(self, user_id: str, rows: Sequence[dict[str, Any]]) -> "ReportBuilder":
        self.lines.append(f"top tracks of {user_id}:")
        for row in rows[: self.top]:
            minutes = row["ms"] / 60_000
            track, artist = row["track_id"], row["artist_id"]
            self.lines.append(f"  {track:<10} {artist:<10} {row['plays']:>4} plays {minutes:7.1f} min")
        if not rows:
            self.lines.append("  (no plays)")
        return self

    def render(self) -> str:
        return "\n".join(self.lines)


def register_music(container: Container) -> Container:
    """Add the app's services to ``container`` (buttress's are already there in the default one)."""
    container.register(MusicSettings, load_music_settings)
    container.register(Catalog)
    container.register(Listening, lifetime=Lifetime.SCOPED)
    container.register(ReportBuilder, lifetime=Lifetime.TRANSIENT)
    return container
