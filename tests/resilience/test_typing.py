"""mypy proves the decorators keep the decorated function's parameters and return type."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SNIPPET = textwrap.dedent(
    """
    from buttress.resilience import Bulkhead, CircuitBreaker, Fallback, Pipeline, RateLimiter, Retry, Timeout

    pipeline = Pipeline("p", retry=Retry(on=ConnectionError))

    @pipeline
    def get(path: str, *, timeout: float = 1.0) -> bytes:
        return b""

    @pipeline
    async def aget(path: str) -> dict[str, int]:
        return {}

    class Client:
        @Retry(on=ConnectionError)
        @CircuitBreaker("c")
        @RateLimiter("10/s")
        @Bulkhead(2)
        @Timeout(1.0)
        @Fallback(on=KeyError, value=0)
        def count(self, name: str) -> int:
            return 1

    reveal_type(get)
    reveal_type(aget)
    reveal_type(Client().count)
    reveal_type(pipeline.call(get, "/"))
    get(1)
    """
)


def test_decorators_keep_parameters_and_return_types(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    stdout, _, _ = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    revealed = [
        line.split("Revealed type is ")[1].strip('"') for line in stdout.splitlines() if "Revealed" in line
    ]
    revealed = [text.replace("builtins.", "") for text in revealed]  # mypy versions differ in qualifying
    assert revealed == [
        "def (path: str, *, timeout: float =) -> bytes",
        "def (path: str) -> typing.Coroutine[Any, Any, dict[str, int]]",
        "def (name: str) -> int",
        "bytes",
    ], stdout
    assert 'Argument 1 to "get" has incompatible type "int"; expected "str"' in stdout
