"""Types by content (the helper "types" replaces this first version)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

from buttress._extras import require
from buttress.errors import FileTypeRejected, ValidationError

__all__ = ["HEAD_SIZE", "TypeDetector", "validate_allowed"]

HEAD_SIZE: Final = 8192


def validate_allowed(allowed: Sequence[str], field: str) -> tuple[str, ...]:
    """``allowed`` as a tuple of ``type/subtype`` or ``type/*`` patterns."""
    if isinstance(allowed, str):
        raise ValidationError(f"{field} must be a list of types, got a string; e.g. ['image/*']", field=field)
    for pattern in allowed:
        if not isinstance(pattern, str) or pattern.count("/") != 1:
            raise ValidationError(
                f"{field} holds {pattern!r}; e.g. ['image/*', 'application/pdf']", field=field
            )
    return tuple(allowed)


class TypeDetector:
    """libmagic behind one lock."""

    def __init__(self) -> None:
        self._magic: Any = require("magic", "files").Magic(mime=True)
        self._lock = threading.Lock()

    def detect(self, head: bytes) -> str:
        with self._lock:
            return str(self._magic.from_buffer(head[:HEAD_SIZE]))

    def check(self, head: bytes, *, name: str | None, declared: str | None, allowed: Sequence[str]) -> str:
        found = self.detect(head)
        if allowed and not any(
            found == pattern or (pattern.endswith("/*") and found.startswith(pattern[:-1]))
            for pattern in allowed
        ):
            raise FileTypeRejected(
                f"the content is {found}, not one of {', '.join(allowed)}",
                context={"detected": found, "reason": "not_allowed"},
            )
        return found
