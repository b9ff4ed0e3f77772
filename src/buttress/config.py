"""One typed configuration tree for every buttress component.

Values come from, highest priority first: keyword arguments to ``Settings(...)``, environment variables
(prefix ``BUTTRESS_``, ``__`` between nested names, any case), the ``.env`` file, then the defaults. A whole
section may also be given as JSON (``BUTTRESS_EVENTS='{"queue_size": 10}'``). Empty values count as unset.

:func:`load_settings` turns pydantic's errors into one :class:`~buttress.errors.ConfigError` that names every
bad variable at once; :func:`describe_settings` tells where each effective value came from. The field
descriptions and examples feed ``.env.example``, the README table and the error messages, so they are
mandatory on every leaf (a test enforces it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from buttress._config_cache import CacheSettings
from buttress._config_fields import (
    ENV_PREFIX,
    NESTED_DELIMITER,
    EnvFile,
    RawSources,
    SettingField,
    env_var_name,
    shown_value,
)
from buttress._config_fields import setting_fields as _setting_fields
from buttress._config_http import (
    HttpBulkheadSettings,
    HttpHostPolicySettings,
    HttpPolicySettings,
    HttpRetrySettings,
    HttpSettings,
    HttpTimeoutSettings,
)
from buttress._config_problems import problem_from_settings_error, problems_from_validation_error
from buttress._config_resilience import (
    BreakerSettings,
    BulkheadSettings,
    LimiterSettings,
    PipelineSettings,
    ResilienceSettings,
    RetrySettings,
)
from buttress._redaction import mask_url_password
from buttress.errors import MASK, ConfigError

__all__ = [
    "ENV_PREFIX",
    "NESTED_DELIMITER",
    "AppSettings",
    "BreakerSettings",
    "BulkheadSettings",
    "CacheSettings",
    "EventsSettings",
    "HttpBulkheadSettings",
    "HttpHostPolicySettings",
    "HttpPolicySettings",
    "HttpRetrySettings",
    "HttpSettings",
    "HttpTimeoutSettings",
    "LimiterSettings",
    "LoggingSettings",
    "ObserveSettings",
    "PipelineSettings",
    "ResilienceSettings",
    "RetrySettings",
    "SecuritySettings",
    "ServerSettings",
    "SettingField",
    "SettingValue",
    "Settings",
    "Source",
    "describe_settings",
    "env_var_name",
    "get_settings",
    "load_settings",
    "mask_url_password",
    "render_config_table",
    "render_env_example",
    "reset_settings",
    "setting_fields",
]

SECRET_EXAMPLE = "<long random string>"  # noqa: S105 -- a placeholder, shown in docs
INVALID_MESSAGE = "Invalid buttress configuration"

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_SQLALCHEMY_URL = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\+[A-Za-z0-9_]+)?://")

Source = Literal["default", "env", ".env", "init"]


class AppSettings(BaseModel):
    """Who this service is; shown in logs, metrics and the ops server."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(
        default="buttress",
        min_length=1,
        description="Service name, shown in logs, metrics and the ops server.",
        examples=["orders-api"],
    )
    environment: Literal["development", "test", "staging", "production"] = Field(
        default="development",
        description="Where the service runs, reported in logs and health output.",
        examples=["production"],
    )


class LoggingSettings(BaseModel):
    """How :func:`buttress.observe.logging.configure_logging_from_settings` sets up logs."""

    model_config = ConfigDict(frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO",
        description="Lowest level written, for buttress and stdlib loggers alike (any case).",
        examples=["DEBUG"],
    )
    format: Literal["console", "json"] = Field(
        default="console",
        description="Output style: console for people at a terminal, json for one JSON object per line.",
        examples=["json"],
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class EventsSettings(BaseModel):
    """The event bus: in-process, or shared by every process through Redis."""

    model_config = ConfigDict(frozen=True)

    transport: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where events travel: memory stays in this process, redis reaches every process.",
        examples=["redis"],
    )
    queue_size: int = Field(
        default=1000,
        ge=1,
        description="Events kept per subscriber; when full, its oldest event is dropped and counted.",
        examples=[5000],
    )
    channel_prefix: str = Field(
        default="buttress:events",
        min_length=1,
        description="Prefix of the Redis channels, so several applications can share one Redis.",
        examples=["orders:events"],
    )


class SecuritySettings(BaseModel):
    """Secrets; always ``SecretStr`` so they never reach a log line, a repr or the CLI."""

    model_config = ConfigDict(frozen=True)

    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs tokens and cookies; long and random.",
        examples=[SECRET_EXAMPLE],
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the ops server's admin endpoints; unset disables them.",
        examples=[SECRET_EXAMPLE],
    )


JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "ES256"]
_HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


class ServerSettings(BaseModel):
    """The ops server (``buttress serve``, :func:`buttress.server.create_app`) and its admin JWTs.

    Admin endpoints accept ``security.admin_token`` or a JWT verified with these settings; with neither
    configured they do not exist at all.
    """

    model_config = ConfigDict(frozen=True)

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address `buttress serve` listens on; loopback by default, 0.0.0.0 for every interface.",
        examples=["0.0.0.0"],  # noqa: S104 -- an example, not a default
    )
    port: int = Field(
        default=8765,
        ge=0,
        le=65535,
        description="TCP port `buttress serve` listens on (0 picks a free one).",
        examples=[9000],
    )
    jwt_algorithm: JwtAlgorithm = Field(
        default="HS256",
        description="Algorithm admin JWTs must be signed with; RS256 and ES256 need the cryptography "
        "package.",
        examples=["HS512"],
    )
    jwt_key: SecretStr | None = Field(
        default=None,
        description="Key that verifies admin JWTs: a shared secret for HS256/384/512, a PEM public key for "
        "RS256/ES256; unset disables JWT admin auth.",
        examples=[SECRET_EXAMPLE],
    )
    jwt_audience: str | None = Field(
        default=None,
        description="Audience (aud) admin JWTs must name; unset refuses tokens that carry one.",
        examples=["buttress-ops"],
    )
    jwt_issuer: str | None = Field(
        default=None,
        description="Issuer (iss) admin JWTs must name; unset accepts any issuer.",
        examples=["https://auth.example.com/"],
    )
    expose_details: bool = Field(
        default=False,
        description="Put exception context and tracebacks in error responses; for development only, "
        "never where clients are untrusted.",
        examples=[True],
    )

    @field_validator("jwt_key")
    @classmethod
    def _hmac_key_long_enough(cls, key: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # PyJWT only warns about short HMAC keys; a guessable admin key is a configuration error.
        minimum = _HMAC_KEY_BYTES.get(info.data.get("jwt_algorithm", ""))
        if key is not None and minimum is not None and len(key.get_secret_value().encode()) < minimum:
            raise PydanticCustomError(
                "jwt_key_too_short",
                "a key of at least {minimum} bytes for {algorithm} (RFC 7518 3.2); generate one with "
                'python -c "import secrets; print(secrets.token_urlsafe(48))"',
                {"minimum": minimum, "algorithm": info.data["jwt_algorithm"]},
            )
        return key


class ObserveSettings(BaseModel):
    """System sampling, its health thresholds and the profiler, as the ops server runs them."""

    model_config = ConfigDict(frozen=True)

    sampler_interval: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between two readings of CPU, memory, disk and file descriptors.",
        examples=[5.0],
    )
    disk_paths: list[str] = Field(
        default_factory=lambda: ["/"],
        min_length=1,
        description="Filesystems whose usage is sampled and checked, as a JSON list of paths.",
        examples=[["/", "/var/lib/app"]],
    )
    memory_warn_percent: float = Field(
        default=90.0,
        ge=0,
        le=100,
        description="Host memory used (%) at which the system health check warns.",
        examples=[85.0],
    )
    memory_fail_percent: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description="Host memory used (%) at which the system health check fails.",
        examples=[98.0],
    )
    disk_warn_percent: float = Field(
        default=90.0,
        ge=0,
        le=100,
        description="Disk used (%) at which the system health check warns.",
        examples=[80.0],
    )
    disk_fail_percent: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description="Disk used (%) at which the system health check fails.",
        examples=[97.0],
    )
    profiler_enabled: bool = Field(
        default=False,
        description="Start the profiler with the ops server; it can also be switched at run time.",
        examples=[True],
    )

    @model_validator(mode="after")
    def _fail_not_below_warn(self) -> ObserveSettings:
        for what in ("memory", "disk"):
            warn, fail = getattr(self, f"{what}_warn_percent"), getattr(self, f"{what}_fail_percent")
            if fail < warn:
                raise ValueError(
                    f"{what}_fail_percent ({fail:g}) must not be below {what}_warn_percent ({warn:g})"
                )
        return self


_ENVIRON_OVERRIDE: ContextVar[Mapping[str, str] | None] = ContextVar(
    "buttress_environ_override", default=None
)


class _MappingEnvSettingsSource(EnvSettingsSource):
    """Reads "environment variables" from a given mapping, so callers and tests need not touch os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by the base __init__ through _load_env_vars
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


class Settings(BaseSettings):
    """Every setting of a buttress service; build it with :func:`load_settings` or :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",  # BUTTRESS_TEST_* and BUTTRESS_REQUIRE_SERVICES belong to the test suite
        frozen=True,
    )

    app: AppSettings = Field(default_factory=AppSettings)
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

    @field_validator("redis_url")
    @classmethod
    def _check_redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(_REDIS_SCHEMES):
            raise PydanticCustomError(
                "redis_url_scheme", "a URL starting with redis://, rediss:// or unix://"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not _SQLALCHEMY_URL.match(value):
            raise PydanticCustomError(
                "database_url_format",
                "a SQLAlchemy URL such as postgresql+psycopg://user@host:5432/db or sqlite:///path/to/file.db",
            )
        return value

    @field_validator("events")
    @classmethod
    def _redis_transport_needs_redis_url(cls, events: EventsSettings, info: ValidationInfo) -> EventsSettings:
        # A field validator rather than a model validator: it still runs when other fields are invalid,
        # so this problem is reported together with theirs. A missing "redis_url" key means that field
        # failed validation and is reported on its own.
        if events.transport == "redis" and "redis_url" in info.data and info.data["redis_url"] is None:
            raise PydanticCustomError(
                "redis_url_required",
                "the redis transport needs a Redis server: set BUTTRESS_REDIS_URL "
                "(for example redis://127.0.0.1:6379/0) or use BUTTRESS_EVENTS__TRANSPORT=memory",
                {"variable": env_var_name(("events", "transport")), "value": "redis"},
            )
        return events

    @field_validator("resilience")
    @classmethod
    def _redis_store_needs_redis_url(
        cls, resilience: ResilienceSettings, info: ValidationInfo
    ) -> ResilienceSettings:
        if resilience.store == "redis" and "redis_url" in info.data and info.data["redis_url"] is None:
            raise PydanticCustomError(
                "redis_url_required",
                "the redis resilience store needs a Redis server: set BUTTRESS_REDIS_URL "
                "(for example redis://127.0.0.1:6379/0) or use BUTTRESS_RESILIENCE__STORE=memory",
                {"variable": env_var_name(("resilience", "store")), "value": "redis"},
            )
        return resilience

    @field_validator("cache")
    @classmethod
    def _cache_backend_needs_redis_url(cls, cache: CacheSettings, info: ValidationInfo) -> CacheSettings:
        if (
            cache.backend in {"redis", "tiered"}
            and "redis_url" in info.data
            and info.data["redis_url"] is None
        ):
            raise PydanticCustomError(
                "redis_url_required",
                "the {backend} cache backend needs a Redis server: set BUTTRESS_REDIS_URL "
                "(for example redis://127.0.0.1:6379/0) or use BUTTRESS_CACHE__BACKEND=auto or memory",
                {
                    "variable": env_var_name(("cache", "backend")),
                    "value": cache.backend,
                    "backend": cache.backend,
                },
            )
        return cache

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON_OVERRIDE.get()
        if environ is not None:
            env_settings = _MappingEnvSettingsSource(settings_cls, environ)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


def setting_fields(settings_cls: type[BaseModel] = Settings) -> tuple[SettingField, ...]:
    """Every leaf of the tree in declaration order, with its variable name, description and example."""
    return _setting_fields(settings_cls)


# --- loading ----------------------------------------------------------------------------------------------


def load_settings(*, env_file: EnvFile = ".env", environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``environ`` (default ``os.environ``) and ``env_file`` (``None``: no file).

    Raises :class:`ConfigError` listing every invalid variable, with its (masked) value, what was
    expected and an example.
    """
    token = _ENVIRON_OVERRIDE.set(environ)
    try:
        return Settings(_env_file=env_file)
    except PydanticValidationError as exc:
        raise ConfigError(INVALID_MESSAGE, problems=problems_from_validation_error(exc, Settings)) from exc
    except SettingsError as exc:
        problem = problem_from_settings_error(exc, Settings, RawSources.read(env_file, environ))
        raise ConfigError(INVALID_MESSAGE, problems=[problem]) from exc
    finally:
        _ENVIRON_OVERRIDE.reset(token)


class _SettingsCache:
    """The process-wide settings, loaded once even when many threads ask at the same moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: Settings | None = None

    def get(self) -> Settings:
        settings = self._settings
        if settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = load_settings()
                settings = self._settings
        return settings

    def clear(self) -> None:
        with self._lock:
            self._settings = None


_CACHE = _SettingsCache()


def get_settings() -> Settings:
    """The process-wide settings from the environment and ``./.env``, loaded on first use."""
    return _CACHE.get()


def reset_settings() -> None:
    """Forget the cached settings so the next :func:`get_settings` reloads them (tests, reloads)."""
    _CACHE.clear()


@dataclass(frozen=True, slots=True)
class SettingValue:
    """One effective setting as it may be shown to people: secrets and URL passwords masked."""

    variable: str
    value: str | int | float | bool | None
    source: Source
    secret: bool


def _public_value(value: object, *, secret: bool) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    if secret or isinstance(value, SecretStr | SecretBytes):
        return MASK
    return mask_url_password(shown_value(value))


def describe_settings(
    settings: Settings, *, env_file: EnvFile = ".env", environ: Mapping[str, str] | None = None
) -> list[SettingValue]:
    """Every leaf's variable, shown value and source: ``env``, ``.env``, ``default``, or ``init``.

    Pass the ``env_file`` and ``environ`` the settings were loaded with. The environment wins over
    ``.env``; ``init`` means a value passed to ``Settings(...)`` in code, found in neither.
    """
    raw = RawSources.read(env_file, environ)
    described: list[SettingValue] = []
    for field in setting_fields(type(settings)):
        value: Any = settings
        for name in field.path:
            value = getattr(value, name)
        source: Source = raw.source_of(field.path) or ("default" if value == field.default else "init")
        described.append(
            SettingValue(field.variable, _public_value(value, secret=field.secret), source, field.secret)
        )
    return described


# --- documentation rendered from the tree -----------------------------------------------------------------


def render_env_example(settings_cls: type[BaseModel] = Settings) -> str:
    """The ``.env.example`` text: each variable with its description, default and an example value.

    Secrets get an empty value: a copied placeholder must never become a real, guessable secret.
    """
    lines = [
        "# buttress configuration: every variable with its default and an example value.",
        "# Generated by `buttress config --example`; regenerate it rather than editing by hand.",
        "# Copy the lines you need to .env; a variable left out or empty keeps its default.",
    ]
    for field in setting_fields(settings_cls):
        lines += ["", f"# {field.description}"]
        if field.choices:
            lines.append("# One of: " + ", ".join(field.choices) + ".")
        lines.append(f"# Default: {'unset' if field.default is None else shown_value(field.default)}")
        if field.secret:
            lines.append(
                "# Secret, never commit it. Generate one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
            lines.append(f"{field.variable}=")
        else:
            lines.append(f"{field.variable}={field.example}")
    return "\n".join(lines) + "\n"


def render_config_table(settings_cls: type[BaseModel] = Settings, *, prefix: str | None = None) -> str:
    """The README's markdown table: variable, default, description, example.

    ``prefix`` replaces ``BUTTRESS_`` for a model that lives below a mapping, such as the knobs of one
    named pipeline (``render_config_table(PipelineSettings, prefix="<NAME>__")``).
    """
    rows = ["| Variable | Default | Description | Example |", "|---|---|---|---|"]
    for field in setting_fields(settings_cls):
        variable = field.variable if prefix is None else prefix + field.variable.removeprefix(ENV_PREFIX)
        default = "*unset*" if field.default is None else f"`{shown_value(field.default)}`"
        description = field.description
        if field.choices:
            description += " One of " + ", ".join(f"`{choice}`" for choice in field.choices) + "."
        description = description.replace("|", "\\|")
        rows.append(f"| `{variable}` | {default} | {description} | `{field.example}` |")
    return "\n".join(rows) + "\n"
