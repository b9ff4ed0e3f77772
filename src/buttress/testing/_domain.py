"""Plain data shared by the front object and the server: a domain's description and the counters.

Both cross the process boundary in process mode, so they are small picklable dataclasses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from buttress.errors import ValidationError
from buttress.testing._fault import Fault

__all__ = ["Domain", "Stats", "check_name", "check_path"]

_NAME: Final = re.compile(r"[a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Domain:
    """One fake service: its own port on 127.0.0.1, a fault for the whole domain, and per-prefix faults.

    ``port`` is None until the upstream starts; ``routes`` pairs path prefixes with their faults.
    """

    name: str
    fault: Fault = field(default_factory=Fault)
    routes: tuple[tuple[str, Fault], ...] = ()
    port: int | None = None

    @property
    def down(self) -> bool:
        """Whether the domain refuses connections."""
        return self.fault.down


@dataclass(frozen=True, slots=True)
class Stats:
    """What the server counted: requests per path, outcomes and accepted connections, per domain."""

    counts: dict[str, dict[str, int]]
    outcomes: dict[str, dict[str, int]]
    connections: dict[str, int]

    @classmethod
    def empty(cls, names: Iterable[str]) -> Stats:
        names = list(names)
        return cls({name: {} for name in names}, {name: {} for name in names}, dict.fromkeys(names, 0))


def check_name(name: object) -> str:
    """A valid domain name (lower-case letters, digits and dashes), or a ValidationError saying so."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"name must be lower-case letters, digits and dashes ([a-z0-9-]+), got {name!r}; "
            "e.g. up.add('payments-api')",
            field="name",
        )
    return name


def check_path(path: object) -> str:
    """A path that starts with '/', or a ValidationError saying so."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValidationError(f"path must start with '/', got {path!r}; e.g. '/items/1'", field="path")
    return path
