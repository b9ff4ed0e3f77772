"""The URLs of a run, from the command line: each argument is a URL or a file of URLs, one per line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx

from buttress.errors import ValidationError

__all__ = ["read_sources"]


def read_sources(arguments: Iterable[str]) -> list[str]:
    """URLs in order; in files, blank lines and ``#`` comments are skipped. A bad entry names its source."""
    urls: list[str] = []
    for argument in arguments:
        if "://" in argument:
            urls.append(_checked(argument, "the command line"))
            continue
        path = Path(argument)
        if not path.is_file():
            raise ValidationError(
                f"urls: {argument!r} is neither an http(s) URL nor a file; "
                "e.g. https://example.com/a or urls.txt",
                field="urls",
            )
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            entry = line.strip()
            if entry and not entry.startswith("#"):
                urls.append(_checked(entry, f"{argument}:{number}"))
    if not urls:
        raise ValidationError("urls: no URL given; pass URLs or a file of URLs, e.g. urls.txt", field="urls")
    return urls


def _checked(url: str, where: str) -> str:
    parsed = httpx.URL(url) if url.isascii() else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError(
            f"urls: {url!r} ({where}) is not an absolute http(s) URL; e.g. https://example.com/article",
            field="urls",
        )
    return url
