"""The root of the settings tree: every section, the two service URLs, and the rules that span sections.

Values come from, highest priority first: keyword arguments to ``Settings(...)``, environment variables
(prefix ``BUTTRESS_``, ``__`` between nested names, any case), the ``.env`` file, then the defaults. A whole
section may also be given as JSON (``BUTTRESS_EVENTS='{"queue_size": 10}'``). Empty values count as unset.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from buttress._redis import check_url
from buttress.config._app import AppSettings
from buttress.config._cache import CacheSettings
from buttress.config._db import DbSettings
from buttress.config._events import EventsSettings
from buttress.config._fields import ENV_PREFIX, NESTED_DELIMITER, SettingField
from buttress.config._fields import setting_fields as _setting_fields
from buttress.config._files import FilesSettings
from buttress.config._http import HttpSettings
from buttress.config._jobs import JobsSettings
from buttress.config._logging import LoggingSettings
from buttress.config._observe import ObserveSettings
from buttress.config._realtime import RealtimeSettings
from buttress.config._resilience import ResilienceSettings
from buttress.config._rules import check_section_rules, sections_with_rules
from buttress.config._security import SecuritySettings
from buttress.config._server import ServerSettings
from buttress.config._sources import environment_source, tolerant_dotenv_source
from buttress.config._unknown import WithoutUnknownKeys
from buttress.errors import ValidationError

__all__ = ["DATABASE_SCHEMES", "Settings", "setting_fields"]

_REDIS_SCHEMES: Final = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
)
_SQLALCHEMY_URL: Final = re.compile(r"^([A-Za-z][A-Za-z0-9]*(?:\+[A-Za-z0-9_]+)?)://")
# What the data layer can open with the drivers buttress ships (psycopg 3, sqlite3, aiosqlite); a bare
# postgresql:// or postgres:// gets psycopg 3.
DATABASE_SCHEMES: Final = (
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg_async",
    "sqlite",
    "sqlite+pysqlite",
    "sqlite+aiosqlite",
)


class Settings(BaseSettings):
    """Every setting of a buttress service; build it with :func:`load_settings` or :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",  # unknown BUTTRESS_* variables are found by load_settings, with a "did you mean"
        frozen=True,
    )

    app: AppSettings = Field(default_factory=AppSettings)
    # The URLs come before the sections: the URL rules read them from the fields validated so far.
    redis_url: str | None = Field(
        default=None,
        description="Redis for distributed state and events; unset keeps everything in this process.",
        examples=["redis://127.0.0.1:6379/0"],
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database for durable state (PostgreSQL or SQLite).",
        examples=["postgresql+psycopg://app@127.0.0.1:5432/app"],
    )
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    observe: ObserveSettings = Field(default_factory=ObserveSettings)
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    db: DbSettings = Field(default_factory=DbSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(_REDIS_SCHEMES):
            raise PydanticCustomError(
                "redis_url_scheme",
                "a URL starting with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://",
            )
        if value is not None:
            try:  # a cluster or Sentinel URL without hosts or service, or a cluster db: an error now
                check_url(value, "redis_url")
            except ValidationError as exc:
                raise PydanticCustomError("redis_url_shape", "{message}", {"message": str(exc)}) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _SQLALCHEMY_URL.match(value)
        if match is None:
            raise PydanticCustomError(
                "database_url_format",
                "a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db or sqlite:///path/to/file.db",
            )
        if match.group(1).lower() not in DATABASE_SCHEMES:
            raise PydanticCustomError(
                "database_url_scheme",
                "a PostgreSQL or SQLite URL; the schemes buttress can use are {schemes}",
                {"schemes": ", ".join(f"{scheme}://" for scheme in DATABASE_SCHEMES)},
            )
        return value

    @field_validator(*sections_with_rules())
    @classmethod
    def _section_rules(cls, section: BaseModel, info: ValidationInfo) -> BaseModel:
        # A field validator rather than a model validator: it still runs when other fields are invalid,
        # so a broken rule is reported together with their problems.
        check_section_rules(info.field_name or "", section, info.data, cls)
        return section

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Both keep a value that is not valid JSON as text, so it fails at its own variable (see _sources),
        # and leave out the keys that name no setting, reported by load_settings (see _unknown).
        env_settings = WithoutUnknownKeys(settings_cls, environment_source(settings_cls))
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            dotenv_settings = WithoutUnknownKeys(
                settings_cls, tolerant_dotenv_source(settings_cls, dotenv_settings)
            )
        return init_settings, env_settings, dotenv_settings, file_secret_settings


def setting_fields(settings_cls: type[BaseModel] = Settings) -> tuple[SettingField, ...]:
    """Every leaf of the tree in declaration order, with its variable name, description and example."""
    return _setting_fields(settings_cls)
