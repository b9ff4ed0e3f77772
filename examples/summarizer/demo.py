"""A world to run against with no network: news and blog domains, a failing one, a dead one, a fake LLM.

Every domain is a ``buttress.testing.Upstream`` domain on loopback; ``down`` answers 503 to everything and
``dead`` refuses connections, so their breakers open after three failed requests while the other domains
are summarised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from buttress.testing import Fault, Latency, Upstream

__all__ = ["World", "demo_world"]

PAGE_DOMAINS = ("news", "blog", "down", "dead")


@dataclass(frozen=True, slots=True)
class World:
    upstream: Upstream
    llm_url: str
    urls: list[str]

    def label(self, url: str) -> str:
        """``url`` for people: the domain's name instead of its loopback address and port."""
        for name in (*PAGE_DOMAINS, "llm"):
            url = url.replace(f"http://{self.upstream.host(name)}", name)
        return url


@contextmanager
def demo_world(pages_per_domain: int = 8, seed: int = 1) -> Iterator[World]:
    """Started upstreams and the URLs to summarise, ``pages_per_domain`` per page domain, interleaved."""
    with Upstream(seed=seed) as upstream:
        upstream.add("news", Fault(latency=Latency.uniform(0.001, 0.005)))
        upstream.add("blog", Fault(latency=Latency.uniform(0.001, 0.005)))
        upstream.add("down", Fault(errors={503: 1.0}))
        upstream.add("dead")
        upstream.set_down("dead")
        upstream.add("llm", Fault(latency=Latency.fixed(0.002)))
        urls = [
            upstream.url(domain, f"/articles/{number}")
            for number in range(pages_per_domain)
            for domain in PAGE_DOMAINS
        ]
        yield World(upstream, upstream.url("llm", "/v1/summarize"), urls)
