"""What the CLI commands that read a running ops server share: its URL, where its routes are, the errors.

The ops routes sit at the root of ``buttress serve`` (and of :func:`buttress.server.create_app`) and under
``/ops`` in an app that called :func:`buttress.server.install`. :class:`OpsClient` takes either URL, the
server's root or the mount, and finds the routes: it asks the URL given, and on a 404 the other place
(``<url>/ops``, or the URL without its ``/ops``), then keeps the one that answered.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final, Self

import httpx
from rich.console import Console
from rich.text import Text

from buttress.config import get_settings

__all__ = ["OPS_PREFIX", "OpsClient", "candidate_bases", "default_ops_url", "problem_text"]

OPS_PREFIX: Final = "/ops"
"""Where :func:`buttress.server.install` mounts the ops routes by default."""


def default_ops_url() -> str:
    """The ops server of this machine's settings: ``http://<server.host>:<server.port>``."""
    server = get_settings().server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host  # noqa: S104 - reading, not binding
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{server.port}"


def candidate_bases(url: str) -> tuple[str, str]:
    """Where the ops routes may be, the URL given first: ``(url, url/ops)``, or ``(url, url less /ops)``."""
    base = url.rstrip("/")
    if base.endswith(OPS_PREFIX):
        return base, base.removesuffix(OPS_PREFIX)
    return base, base + OPS_PREFIX


def problem_text(answer: httpx.Response) -> str:
    """``HTTP <status>: <detail>`` of an error answer (the problem+json detail when there is one)."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"HTTP {answer.status_code}: {detail or body}"


class OpsClient:
    """One running ops server, its routes found on the first GET; errors are printed, never raised.

    Every method returns None after printing why it failed (unreachable, no ops routes, an error status),
    so a command turns None into exit code 1.
    """

    def __init__(self, url: str, console: Console, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.console = console
        self.base: str | None = None
        """Where the routes answered, once a GET found them."""
        self._client = httpx.Client(timeout=10.0, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.close()

    def _say(self, message: str) -> None:
        self.console.print(Text(message, style="red"))

    def _unreachable(self, exc: Exception) -> None:
        self._say(
            f"cannot reach the ops server at {self.url} ({exc}); start it with `buttress serve` or pass --url"
        )

    def get_json(self, path: str) -> Any:
        """The JSON of ``GET <base><path>``, the base found first if need be; None after saying why not."""
        bases = candidate_bases(self.url) if self.base is None else (self.base,)
        tried: list[str] = []
        for base in bases:
            try:
                answer = self._client.get(f"{base}{path}")
            except httpx.TransportError as exc:
                self._unreachable(exc)
                return None
            if answer.status_code == httpx.codes.NOT_FOUND and self.base is None:
                tried.append(f"{base}{path}")
                continue
            self.base = base
            if answer.status_code != httpx.codes.OK:
                self._say(f"GET {base}{path}: {problem_text(answer)}")
                return None
            return answer.json()
        self._say(
            f"no buttress ops routes at {' or '.join(tried)} (HTTP 404): pass --url with the address of "
            "`buttress serve` or of the app that mounts the ops routes, e.g. http://127.0.0.1:8765 or "
            "http://127.0.0.1:8000/ops"
        )
        return None

    def post(self, path: str, headers: dict[str, str]) -> httpx.Response | None:
        """``POST <base><path>`` where a GET found the routes (call :meth:`get_json` first)."""
        base = self.base if self.base is not None else candidate_bases(self.url)[0]
        try:
            return self._client.post(f"{base}{path}", headers=headers)
        except httpx.TransportError as exc:
            self._unreachable(exc)
            return None
