"""One typed configuration tree for every buttress component.

Values come from, highest priority first: keyword arguments to ``Settings(...)``, environment variables
(prefix ``BUTTRESS_``, ``__`` between nested names, any case), the ``.env`` file, then the defaults. A whole
section may also be given as JSON (``BUTTRESS_EVENTS='{"queue_size": 10}'``). Empty values count as unset.

:func:`load_settings` turns pydantic's errors into one :class:`~buttress.errors.ConfigError` that names every
bad variable at once (as written, with its .env line), unknown BUTTRESS_* variables included;
:func:`check_settings` adds the checks that import code (``buttress config --check``);
:func:`describe_settings` tells where each effective value came from. The field
descriptions and examples feed ``.env.example``, the settings reference and the error messages, so they are
mandatory on every leaf (a test enforces it).

The package is laid out by job: one module per section (``_app``, ``_logging``, ``_events``, ``_security``,
``_server``, ``_observe``, ``_resilience``, ``_http``, ``_cache``, ``_db``, ``_jobs``, ``_files``), each a
plain pydantic model that imports no capability; ``_settings`` (the root), ``_rules`` (which backend needs
which URL), ``_sources`` and ``_load`` (reading), ``_problems`` (errors as variables), ``_unknown`` (names
that are no setting), ``_imports`` (the checks that import code) and ``_render`` (what people see).
"""

from buttress._redaction import mask_url_password
from buttress.config._app import AppSettings
from buttress.config._cache import CacheSettings
from buttress.config._db import DbSettings
from buttress.config._events import EventsSettings
from buttress.config._fields import ENV_PREFIX, NESTED_DELIMITER, SettingField, env_var_name
from buttress.config._files import FilesSettings
from buttress.config._http import (
    HttpBulkheadSettings,
    HttpHostPolicySettings,
    HttpPolicySettings,
    HttpRetrySettings,
    HttpSettings,
    HttpTimeoutSettings,
)
from buttress.config._jobs import JobsSettings
from buttress.config._load import check_settings, get_settings, load_settings, reset_settings
from buttress.config._logging import LoggingSettings
from buttress.config._observe import ObserveSettings
from buttress.config._realtime import RealtimeSettings
from buttress.config._render import (
    SettingValue,
    Source,
    describe_settings,
    render_check,
    render_config_table,
    render_env_example,
)
from buttress.config._resilience import (
    BreakerSettings,
    BulkheadSettings,
    LimiterSettings,
    PipelineSettings,
    ResilienceSettings,
    RetrySettings,
)
from buttress.config._security import SecuritySettings
from buttress.config._server import ServerSettings
from buttress.config._settings import DATABASE_SCHEMES, Settings, setting_fields

__all__ = [
    "DATABASE_SCHEMES",
    "ENV_PREFIX",
    "NESTED_DELIMITER",
    "AppSettings",
    "BreakerSettings",
    "BulkheadSettings",
    "CacheSettings",
    "DbSettings",
    "EventsSettings",
    "FilesSettings",
    "HttpBulkheadSettings",
    "HttpHostPolicySettings",
    "HttpPolicySettings",
    "HttpRetrySettings",
    "HttpSettings",
    "HttpTimeoutSettings",
    "JobsSettings",
    "LimiterSettings",
    "LoggingSettings",
    "ObserveSettings",
    "PipelineSettings",
    "RealtimeSettings",
    "ResilienceSettings",
    "RetrySettings",
    "SecuritySettings",
    "ServerSettings",
    "SettingField",
    "SettingValue",
    "Settings",
    "Source",
    "check_settings",
    "describe_settings",
    "env_var_name",
    "get_settings",
    "load_settings",
    "mask_url_password",
    "render_check",
    "render_config_table",
    "render_env_example",
    "reset_settings",
    "setting_fields",
]
