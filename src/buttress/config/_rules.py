"""Which settings need which URL: one table, checked by one validator on :class:`Settings`.

A backend kept in Redis (or, later, in the database) cannot work without its URL. Each row says: while
the setting at ``path`` holds one of ``values``, the root setting ``url`` must be set. A broken row
becomes one problem that names the setting, the URL variable with an example, and the way back.
Adding a backend that needs a server is adding a row here; the validator picks its section up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from buttress.config._fields import env_var_name

__all__ = ["URL_RULES", "NeedsUrl", "check_url_rules", "sections_with_rules"]

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


def sections_with_rules() -> tuple[str, ...]:
    """The root fields (sections) some rule reads, in table order."""
    return tuple(dict.fromkeys(rule.path[0] for rule in URL_RULES))


def check_url_rules(
    section: str, model: BaseModel, validated: Mapping[str, Any], root: type[BaseModel]
) -> None:
    """Raise the first rule of ``section`` that ``model`` breaks, as an error naming its variable.

    ``validated`` holds the root fields validated so far (URLs come before sections). A URL missing from
    it failed its own validation and is reported on its own, so no rule fires on it.
    """
    for rule in URL_RULES:
        if rule.path[0] != section or rule.url not in validated or validated[rule.url] is not None:
            continue
        chosen = getattr(model, rule.path[1])
        if chosen not in rule.values:
            continue
        examples = root.model_fields[rule.url].examples or ["..."]
        raise PydanticCustomError(
            "url_required",
            "{subject} needs {server}: set {url_variable} (for example {example}) "
            "or use {variable}={fallback}",
            {
                "variable": rule.variable,  # read by problems_from_validation_error
                "value": chosen,
                "subject": rule.subject.format(value=chosen),
                "server": rule.server,
                "url_variable": rule.url_variable,
                "example": examples[0],
                "fallback": rule.fallback,
            },
        )
