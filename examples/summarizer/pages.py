"""Fetching a page through the HTTP client's per-host policies and turning it into plain text.

Every host gets its own breaker, retry budget and deadline from :func:`http_settings`; a host that keeps
failing has its breaker opened and is refused locally (``CircuitOpen``) while the others go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

import httpx

from buttress.config import HttpSettings
from buttress.errors import (
    BulkheadFull,
    CircuitOpen,
    DeadlineExceeded,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)
from buttress.http import HttpClient

__all__ = ["Fetched", "Outcome", "fetch_page", "http_settings", "page_text"]

Outcome = Literal["ok", "failed", "breaker_open"]


def http_settings(llm_url: str | None = None) -> HttpSettings:
    """Pages: 2 attempts, a short backoff, a breaker that opens after 3 failures in a row for 30 s.

    The LLM's host gets a named policy: a longer deadline (summaries are slow), 4 attempts and a breaker
    that opens after 5 failures; its POSTs carry an Idempotency-Key, which is what makes them retryable.
    """
    policies: dict[str, object] = {}
    if llm_url is not None:
        host = httpx.URL(llm_url).netloc.decode()
        policies["llm"] = {
            "hosts": [host],
            "deadline": 60.0,
            "timeout": {"read": 60.0},
            "retry": {"attempts": 4},  # a lost summary costs more than a page: try harder
            "breaker": {"consecutive_failures": 5},
        }
    return HttpSettings.model_validate(
        {
            "default": {
                "deadline": 10.0,
                "retry": {"attempts": 2, "initial_delay": 0.05, "max_delay": 0.5},
                "breaker": {"consecutive_failures": 3, "open_duration": 30.0},
            },
            "policies": policies,
        }
    )


@dataclass(frozen=True, slots=True)
class Fetched:
    """One URL's fate: its text when ``outcome`` is ``ok``, else why not."""

    url: str
    host: str
    outcome: Outcome
    text: str = ""
    reason: str = ""


def fetch_page(client: HttpClient, url: str) -> Fetched:
    """GET ``url``; upstream failures and open breakers are outcomes, not exceptions."""
    host = httpx.URL(url).netloc.decode()
    try:
        response = client.get(url)
    except CircuitOpen as exc:
        return Fetched(
            url, host, "breaker_open", reason=f"breaker open, retry in {exc.retry_after or 0:.0f} s"
        )
    except UpstreamStatusError as exc:
        return Fetched(
            url, host, "failed", reason=f"{exc.status_code} after {exc.context.get('attempts')} attempt(s)"
        )
    except UpstreamError as exc:  # no answer: refused, reset, timed out
        cause = exc.context.get("error", exc.error_code)
        return Fetched(url, host, "failed", reason=f"{cause} after {exc.context.get('attempts')} attempt(s)")
    except (RateLimited, BulkheadFull, DeadlineExceeded) as exc:
        return Fetched(url, host, "failed", reason=exc.error_code)
    return Fetched(url, host, "ok", text=page_text(response))


def page_text(response: httpx.Response) -> str:
    """The readable text of a response: HTML without its markup, anything else as it came."""
    if "html" not in response.headers.get("content-type", ""):
        return _squash(response.text)
    parser = _TextOnly()
    parser.feed(response.text)
    return _squash("".join(parser.parts))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_BLOCKS = frozenset(
    {"p", "div", "br", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
)


class _TextOnly(HTMLParser):
    """Collects text outside ``<script>`` and ``<style>``; block elements are kept apart by a space."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")
        if tag in _BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)
