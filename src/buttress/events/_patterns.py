"""Topic validation and subscription patterns (``*`` is one segment, ``**`` is zero or more)."""

from __future__ import annotations

import re
from functools import lru_cache

from buttress.errors import ValidationError

__all__ = ["Pattern", "compile_pattern", "validate_topic"]

_EXAMPLE_TOPIC = "'orders.created'"
_BAD_CHARS = re.compile(r"\s")


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it is a concrete topic (dot-separated, non-empty segments, no wildcards)."""
    if not isinstance(topic, str):
        raise ValidationError(
            f"topic must be a string such as {_EXAMPLE_TOPIC}, got {type(topic).__name__}",
            field="topic",
        )
    if "*" in topic:
        raise ValidationError(
            f"topic {topic!r} contains a wildcard; wildcards belong in subscribe() patterns, "
            f"publish to a concrete topic such as 'breaker.opened'",
            field="topic",
        )
    _check_segments(topic, "topic", _EXAMPLE_TOPIC)
    return topic


def _check_segments(text: str, field: str, example: str) -> list[str]:
    if not text:
        raise ValidationError(
            f"{field} must not be empty; use dot-separated names such as {example}", field=field
        )
    if _BAD_CHARS.search(text):
        raise ValidationError(
            f"{field} {text!r} contains whitespace; use dot-separated names such as {example}", field=field
        )
    segments = text.split(".")
    if "" in segments:
        raise ValidationError(
            f"{field} {text!r} has an empty segment; use dot-separated names such as {example} "
            "with no leading, trailing or doubled dots",
            field=field,
        )
    return segments


class Pattern:
    """A compiled subscription pattern; :meth:`matches` says whether a concrete topic is selected."""

    __slots__ = ("_exact", "_regex", "text")

    def __init__(self, text: str, segments: list[str]) -> None:
        self.text = text
        self._exact = not any("*" in segment for segment in segments)
        # Match against "." + topic so every segment, the first included, is preceded by a dot.
        # An exact pattern compiles too (to an escaped literal) but is matched by string equality.
        parts: list[str] = []
        for index, segment in enumerate(segments):
            if segment == "**" and index and segments[index - 1] == "**":
                continue  # "**.**" matches what "**" does; chained, the regex would backtrack exponentially
            if segment == "**":
                parts.append(r"(?:\.[^.]+)*")
            elif segment == "*":
                parts.append(r"\.[^.]+")
            else:
                parts.append(r"\." + re.escape(segment))
        self._regex = re.compile("".join(parts))

    def matches(self, topic: str) -> bool:
        if self._exact:
            return topic == self.text
        return self._regex.fullmatch("." + topic) is not None

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


def compile_pattern(pattern: object) -> Pattern:
    """Validate and compile a subscription pattern (compiled patterns are cached)."""
    if not isinstance(pattern, str):
        raise ValidationError(
            f"pattern must be a string such as 'orders.*' or 'http.**', got {type(pattern).__name__}",
            field="pattern",
        )
    return _compile(pattern)


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> Pattern:
    segments = _check_segments(pattern, "pattern", "'orders.*' or 'http.**'")
    for segment in segments:
        if "*" in segment and segment not in ("*", "**"):
            raise ValidationError(
                f"pattern {pattern!r} has a segment {segment!r} that mixes '*' with other characters; "
                "a wildcard must be a whole segment: '*' for exactly one segment, '**' for any number "
                "(for example 'breaker.*' or 'http.**')",
                field="pattern",
            )
    return Pattern(pattern, segments)
