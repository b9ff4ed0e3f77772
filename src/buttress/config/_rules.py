"""Which settings need which URL: one table, checked by one validator on :class:`Settings`.

A backend kept in Redis (or, later, in the database) cannot work without its URL. Each row says: while
the setting at ``path`` holds one of ``values``, the root setting ``url`` must be set. A broken row
becomes one problem that names the setting, the URL variable with an example, and the way back.
Adding a backend that needs a server is adding a row here; the validator picks its section up.

The validator also checks what would otherwise fail only once the cache is built: the pickle serializer
needs a signing key (``cache.signing_key``, else ``security.secret_key``); and what would fail once the
database is opened or silently ignored: read replicas (``db.replicas``), the pooler (``db.pooler``) and
the workers' direct LISTEN URL (``jobs.listen_url``) need a PostgreSQL ``database_url``. Every rule a
section breaks is reported, each under its own variable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from buttress._redaction import mask_url_password
from buttress.config._fields import env_var_name

__all__ = ["URL_RULES", "NeedsUrl", "check_section_rules", "sections_with_rules"]

_SERVERS: Final = {"redis_url": "a Redis server", "database_url": "a database"}


@dataclass(frozen=True, slots=True)
class NeedsUrl:
    """While the setting at ``path`` is one of ``values``, the root setting ``url`` must be set.

    ``subject`` names the backend in the message (``{value}`` is replaced by the chosen value);
    ``fallback`` is what to set instead when there is no server.
    """

    path: tuple[str, str]
    values: frozenset[str]
    url: str
    subject: str
    fallback: str

    @property
    def variable(self) -> str:
        return env_var_name(self.path)

    @property
    def url_variable(self) -> str:
        return env_var_name((self.url,))

    @property
    def server(self) -> str:
        return _SERVERS[self.url]


URL_RULES: Final = (
    NeedsUrl(("events", "transport"), frozenset({"redis"}), "redis_url", "the redis transport", "memory"),
    NeedsUrl(
        ("resilience", "store"), frozenset({"redis"}), "redis_url", "the redis resilience store", "memory"
    ),
    NeedsUrl(
        ("cache", "backend"),
        frozenset({"redis", "tiered"}),
        "redis_url",
        "the {value} cache backend",
        "auto or memory",
    ),
)


_PICKLE_KEY_BYTES: Final = 16  # what the signed pickle serializer insists on


def sections_with_rules() -> tuple[str, ...]:
    """The root fields (sections) some rule reads, in table order."""
    return tuple(dict.fromkeys([*(rule.path[0] for rule in URL_RULES), "cache", "db", "jobs"]))


def check_section_rules(
    section: str, model: BaseModel, validated: Mapping[str, Any], root: type[BaseModel]
) -> None:
    """Raise every rule ``model`` (the section called ``section``) breaks, as one error naming each variable.

    ``validated`` holds the root fields validated so far (URLs and ``security`` come before the sections
    that read them). A field missing from it failed its own validation and is reported on its own, so no
    rule fires on it. The error's context carries ``problems``: (variable, value, message) triples.
    """
    problems = [*_url_problems(section, model, validated, root)]
    if section == "cache":
        problems += _pickle_problems(model, validated)
    problems += _postgres_only_problems(section, model, validated)
    if problems:
        raise PydanticCustomError(
            "section_rules",
            "{message}",
            {"message": "; ".join(message for _, _, message in problems), "problems": problems},
        )


def _url_problems(
    section: str, model: BaseModel, validated: Mapping[str, Any], root: type[BaseModel]
) -> list[tuple[str, str, str]]:
    problems = []
    for rule in URL_RULES:
        if rule.path[0] != section or rule.url not in validated or validated[rule.url] is not None:
            continue
        chosen = getattr(model, rule.path[1])
        if chosen not in rule.values:
            continue
        examples = root.model_fields[rule.url].examples or ["..."]
        message = (
            f"{rule.subject.format(value=chosen)} needs {rule.server}: set {rule.url_variable} "
            f"(for example {examples[0]}) or use {rule.variable}={rule.fallback}"
        )
        problems.append((rule.variable, str(chosen), message))
    return problems


def _pickle_problems(cache: BaseModel, validated: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Pickled values are signed; without a key the cache would refuse to start once Redis answers."""
    if getattr(cache, "serializer", None) != "pickle" or getattr(cache, "signing_key", None) is not None:
        return []
    if "security" not in validated:  # its own problem is reported
        return []
    secret = validated["security"].secret_key
    if secret is not None and len(secret.get_secret_value().encode()) >= _PICKLE_KEY_BYTES:
        return []
    variable = env_var_name(("cache", "serializer"))
    return [
        (
            variable,
            "pickle",
            (
                f"the pickle serializer needs a signing key of at least {_PICKLE_KEY_BYTES} bytes: set "
                f"{env_var_name(('cache', 'signing_key'))} (or {env_var_name(('security', 'secret_key'))}) "
                f"or use {variable}=json or msgpack"
            ),
        )
    ]


@dataclass(frozen=True, slots=True)
class _PostgresOnly:
    """A setting that means something only with a PostgreSQL ``database_url`` (else silently ignored)."""

    path: tuple[str, str]
    subject: str  # what is PostgreSQL only; {variable} and {value} are filled in
    target: str  # what database_url should point at instead
    way_back: str  # how to drop the setting; {variable} is filled in


_POSTGRES_ONLY: Final = (
    _PostgresOnly(
        ("db", "replicas"),
        "read replicas are",
        "the PostgreSQL primary (for example postgresql+psycopg://app@10.0.0.1:5432/app)",
        "leave {variable} empty",
    ),
    _PostgresOnly(
        ("db", "pooler"),
        "{variable}={value} is",
        "the pooler's address (for example postgresql+psycopg://app@10.0.0.1:6432/app)",
        "use {variable}=none",
    ),
    _PostgresOnly(
        ("jobs", "listen_url"), "{variable} is", "PostgreSQL (or its pooler)", "leave {variable} unset"
    ),
)


def _postgres_only_problems(
    section: str, model: BaseModel, validated: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """Each :data:`_POSTGRES_ONLY` setting of ``section`` set while ``database_url`` is not PostgreSQL."""
    if "database_url" not in validated:  # the URL's own problem is reported
        return []
    url = validated["database_url"]
    if url is not None and url.lower().startswith("postgres"):
        return []
    url_variable = env_var_name(("database_url",))
    problems = []
    for rule in _POSTGRES_ONLY:
        value = getattr(model, rule.path[1], None)
        if rule.path[0] != section or value in (None, "none", [], ()):
            continue
        variable = env_var_name(rule.path)
        shown = mask_url_password(value if isinstance(value, str) else json.dumps(value))
        message = (
            f"{rule.subject.format(variable=variable, value=shown)} PostgreSQL only and {url_variable} is "
            f"{'unset (the embedded SQLite file)' if url is None else 'a SQLite URL'}: "
            f"set {url_variable} to {rule.target} or {rule.way_back.format(variable=variable)}"
        )
        problems.append((variable, shown, message))
    return problems
