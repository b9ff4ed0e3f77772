""":class:`Upstream`: fake services on 127.0.0.1 that fail on purpose, the same way every run.

The front object keeps the description of every domain and reserves their ports; a runner (a thread of
this process, or a child process) serves them. Control calls go to the runner; after ``stop()`` the
counters stay readable from the final snapshot.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import replace
from types import TracebackType
from typing import Final, Literal

from buttress.errors import ConflictError, ValidationError
from buttress.testing._domain import Domain, Stats, check_name, check_path
from buttress.testing._engine import bind_socket
from buttress.testing._fault import Fault
from buttress.testing._process import ProcessRunner
from buttress.testing._thread import ThreadRunner

__all__ = ["DEFAULT_DOMAIN", "Mode", "Upstream"]

Mode = Literal["thread", "process"]
DEFAULT_DOMAIN: Final = "default"


class Upstream:
    """A set of fault-injecting HTTP/1.1 domains, each on its own port of 127.0.0.1.

    ``seed`` makes every fate repeatable: the n-th request to a path of a domain meets the same fate in
    every run. ``mode="process"`` serves from a child process (for benchmarks, away from the GIL).
    Without any :meth:`add`, the upstream has one healthy domain called ``"default"``.
    """

    def __init__(self, *, seed: int = 0, mode: Mode = "thread") -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValidationError(
                f"seed must be an integer, got {seed!r}; e.g. Upstream(seed=0)", field="seed"
            )
        if mode not in ("thread", "process"):
            raise ValidationError(
                f"mode must be 'thread' or 'process', got {mode!r}; e.g. Upstream(mode='process')",
                field="mode",
            )
        self._seed = seed
        self._mode: Mode = mode
        self._domains: dict[str, Domain] = {}
        self._runner: ThreadRunner | ProcessRunner | None = None
        self._reserved: dict[str, socket.socket] = {}
        self._final: Stats | None = None
        self._lock = threading.RLock()

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def domains(self) -> tuple[Domain, ...]:
        """Every domain as it is now (faults, routes, port while running)."""
        with self._lock:
            return tuple(self._domains.values())

    def __repr__(self) -> str:
        names = list(self._domains)
        return f"Upstream(seed={self._seed}, mode={self._mode!r}, domains={names}, running={self.running})"

    # -- shape ---------------------------------------------------------------------------------------------

    def add(self, name: str, fault: Fault | None = None) -> Domain:
        """Add a domain with its own port; when the upstream runs, it listens at once."""
        with self._lock:
            check_name(name)
            if name in self._domains:
                raise ValidationError(
                    f"name: domain {name!r} already exists; change it with set_fault({name!r}, Fault(...))",
                    field="name",
                )
            domain = Domain(name, _check_fault(fault or Fault()))
            if self._runner is not None:
                domain = self._serve(domain, self._runner)
            self._domains[name] = domain
            return domain

    def route(self, domain: str, path: str, fault: Fault) -> None:
        """Put ``fault`` in force for ``path`` and below (``/a`` covers ``/a/b``, not ``/ab``)."""
        self.set_fault(domain, fault, path=path)

    def domain(self, name: str = DEFAULT_DOMAIN) -> Domain:
        """The domain called ``name`` as it is now."""
        with self._lock:
            return self._get(name)

    def set_fault(self, domain: str, fault: Fault, path: str | None = None) -> None:
        """Replace the fault of a domain, or of one path prefix in it; takes effect for the next request.

        A domain's new fault also decides whether it listens (``down``) and starts a fresh rate limit.
        """
        with self._lock:
            current = self._get(domain)
            _check_fault(fault)
            if path is None:
                updated = replace(current, fault=fault)
            else:
                check_path(path)
                if fault.down:
                    raise ValidationError(
                        f"down: a path cannot refuse connections, only a whole domain; "
                        f"use set_down({domain!r}, True)",
                        field="down",
                    )
                routes = tuple((p, f) for p, f in current.routes if p != path)
                updated = replace(current, routes=(*routes, (path, fault)))
            if self._runner is not None:
                self._runner.set_fault(domain, fault, path)
            self._domains[domain] = updated

    def set_down(self, domain: str, down: bool = True) -> None:
        """Refuse connections on the domain's port (open ones are dropped), or listen again on it."""
        with self._lock:
            current = self._get(domain)
            self.set_fault(domain, replace(current.fault, down=down))

    # -- life ----------------------------------------------------------------------------------------------

    def start(self) -> Upstream:
        """Reserve a port per domain and start serving; a second call does nothing."""
        with self._lock:
            if self._runner is not None:
                return self
            if not self._domains:
                self.add(DEFAULT_DOMAIN)
            runner = ThreadRunner(self._seed) if self._mode == "thread" else ProcessRunner(self._seed)
            try:
                for name, domain in self._domains.items():
                    self._domains[name] = self._serve(domain, runner)
            except BaseException:  # pragma: no cover - needs the OS to refuse a socket; leave nothing running
                self._release(runner)
                raise
            self._runner = runner
            return self

    def stop(self) -> None:
        """Stop serving and free the ports; counters stay readable. Safe to call twice."""
        with self._lock:
            if self._runner is not None:
                self._release(self._runner)

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self, domain: Domain, runner: ThreadRunner | ProcessRunner) -> Domain:
        sock = bind_socket()
        self._reserved[domain.name] = sock
        port = int(sock.getsockname()[1])
        runner.add(domain, port)
        return replace(domain, port=port)

    def _release(self, runner: ThreadRunner | ProcessRunner) -> None:
        try:
            self._final = runner.stop()
        finally:
            self._runner = None
            for sock in self._reserved.values():
                sock.close()
            self._reserved.clear()
            self._domains = {name: replace(d, port=None) for name, d in self._domains.items()}

    # -- addresses -----------------------------------------------------------------------------------------

    def port(self, domain: str = DEFAULT_DOMAIN) -> int:
        """The domain's port on 127.0.0.1 (the upstream must be running)."""
        with self._lock:
            port = self._get(domain).port
            if port is None:
                raise ConflictError(
                    f"upstream is not running, so domain {domain!r} has no port yet; "
                    "call start() or use `with upstream:` first"
                )
            return port

    def host(self, domain: str = DEFAULT_DOMAIN) -> str:
        """``127.0.0.1:<port>``: what a client keys per-host policies by."""
        return f"127.0.0.1:{self.port(domain)}"

    def url(self, domain: str = DEFAULT_DOMAIN, path: str = "/") -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://{self.host(domain)}{check_path(path)}"

    # -- counters ------------------------------------------------------------------------------------------

    def calls(self, domain: str = DEFAULT_DOMAIN, path: str | None = None) -> int:
        """Requests the domain received, on every path or on one (the query string is ignored)."""
        counts = self._stats(domain).counts.get(domain, {})
        if path is None:
            return sum(counts.values())
        return counts.get(check_path(path).partition("?")[0], 0)

    def outcomes(self, domain: str = DEFAULT_DOMAIN) -> dict[str, int]:
        """How requests ended: ``{"200": n, "503": n, "429": n, "reset": n, "hang": n}`` (seen ones only)."""
        return self._stats(domain).outcomes.get(domain, {})

    def connections(self, domain: str = DEFAULT_DOMAIN) -> int:
        """TCP connections the domain accepted since start (or the last :meth:`reset_counts`)."""
        return self._stats(domain).connections.get(domain, 0)

    def counts(self) -> dict[str, dict[str, int]]:
        """Requests per path, per domain: ``{domain: {path: n}}``."""
        return self._stats(None).counts

    def reset_counts(self) -> None:
        """Zero every counter (requests, outcomes, connections); faults and rate-limit state stay."""
        with self._lock:
            if self._runner is not None:
                self._runner.reset_counts()
            self._final = None

    def _stats(self, domain: str | None) -> Stats:
        with self._lock:
            if domain is not None:
                self._get(domain)
            if self._runner is not None:
                return self._runner.snapshot()
            return self._final or Stats.empty(self._domains)

    def _get(self, name: str) -> Domain:
        if name == DEFAULT_DOMAIN and not self._domains:
            self.add(DEFAULT_DOMAIN)
        domain = self._domains.get(name)
        if domain is None:
            known = ", ".join(repr(n) for n in self._domains)
            raise ValidationError(
                f"domain: no domain called {name!r}; known domains: {known}; add it with up.add({name!r})",
                field="domain",
                context={"known": list(self._domains)},
            )
        return domain


def _check_fault(fault: object) -> Fault:
    if not isinstance(fault, Fault):
        raise ValidationError(
            f"fault must be a buttress.testing.Fault, got {type(fault).__name__}; "
            "e.g. Fault(errors={503: 0.3})",
            field="fault",
        )
    return fault
