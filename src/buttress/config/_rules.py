"""Which settings need which URL: one table, checked by one validator on :class:`Settings`.

A backend kept in Redis (or, later, in the database) cannot work without its URL. Each row says: while
the setting at ``path`` holds one of ``values``, the root setting ``url`` must be set. A broken row
becomes one problem that names the setting, the URL variable with an example, and the way back.
Adding a backend that needs a server is adding a row here; the validator picks its section up.

The validator also checks what would otherwise fail only once the cache is built: the pickle serializer
needs a signing key (``cache.signing_key``, else ``security.secret_key``); and what would fail once the
database is opened: read replicas (``db.replicas``) need a PostgreSQL ``database_url``. Every rule a
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
    if section == "db":
        problems += _replica_problems(model, validated) + _pooler_problems(model, validated)
    if section == "jobs":
        problems += _listen_problems(model, validated)
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


def _replica_problems(db: BaseModel, validated: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Read replicas are PostgreSQL hot standbys: the primary (``database_url``) must be PostgreSQL too."""
    replicas = getattr(db, "replicas", None)
    if not replicas or "database_url" not in validated:  # none, or the URL's own problem is reported
        return []
    url = validated["database_url"]
    if url is not None and url.lower().startswith("postgresql"):
        return []
    variable = env_var_name(("db", "replicas"))
    url_variable = env_var_name(("database_url",))
    return [
        (
            variable,
            mask_url_password(json.dumps(replicas)),
            (
                f"read replicas are PostgreSQL only and {url_variable} is "
                f"{'unset (the embedded SQLite file)' if url is None else 'a SQLite URL'}: "
                f"set {url_variable} to the PostgreSQL primary "
                "(for example postgresql+psycopg://app@10.0.0.1:5432/app) "
                f"or leave {variable} empty"
            ),
        )
    ]


def _pooler_problems(db: BaseModel, validated: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A pooler (PgBouncer) sits in front of PostgreSQL: with SQLite the setting would be silently ignored."""
    pooler = getattr(db, "pooler", "none")
    if pooler == "none" or "database_url" not in validated:  # unset, or the URL's own problem is reported
        return []
    url = validated["database_url"]
    if url is not None and url.lower().startswith("postgres"):
        return []
    variable = env_var_name(("db", "pooler"))
    url_variable = env_var_name(("database_url",))
    return [
        (
            variable,
            str(pooler),
            (
                f"{variable}={pooler} is PostgreSQL only and {url_variable} is "
                f"{'unset (the embedded SQLite file)' if url is None else 'a SQLite URL'}: "
                f"set {url_variable} to the pooler's address "
                "(for example postgresql+psycopg://app@10.0.0.1:6432/app) "
                f"or use {variable}=none"
            ),
        )
    ]


def _listen_problems(jobs: BaseModel, validated: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A direct LISTEN URL serves PostgreSQL job workers; with SQLite it would be silently ignored."""
    listen_url = getattr(jobs, "listen_url", None)
    if listen_url is None or "database_url" not in validated:  # unset, or the URL's own problem is reported
        return []
    url = validated["database_url"]
    if url is not None and url.lower().startswith("postgres"):
        return []
    variable = env_var_name(("jobs", "listen_url"))
    url_variable = env_var_name(("database_url",))
    return [
        (
            variable,
            mask_url_password(listen_url),
            (
                f"{variable} is PostgreSQL only and {url_variable} is "
                f"{'unset (the embedded SQLite file)' if url is None else 'a SQLite URL'}: "
                f"set {url_variable} to PostgreSQL (or its pooler) or leave {variable} unset"
            ),
        )
    ]
