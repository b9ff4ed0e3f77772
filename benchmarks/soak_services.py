"""What the soak's chaos loop pauses: a TCP proxy in front of PostgreSQL (Redis: tests/_redis_server.py).

The database is paused through a proxy, not by SIGSTOP of server processes: the PostgreSQL on 5432 is
shared, and a proxy that stops relaying bytes looks to every client exactly like a frozen server (open
connections hang, new ones connect and then hang), while the server itself and its other users are left
alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests._ports import free_port

__all__ = ["PausableProxy"]


class PausableProxy:
    """Relays 127.0.0.1:``port`` to ``host``:``upstream``; :meth:`pause` stops relaying until :meth:`resume`.

    Runs its own event loop in a daemon thread. While paused, no byte moves either way and new
    connections are accepted but not connected upstream.
    """

    def __init__(self, host: str, upstream: int) -> None:
        self.host = host
        self.upstream = upstream
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def stop(self) -> None:
        self._flowing.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))  # let the cancelled relays close their sockets
        loop.close()

    async def _wait_flowing(self) -> None:
        while not self._flowing.is_set():  # noqa: ASYNC110 - a threading.Event, set from the chaos thread
            await asyncio.sleep(0.01)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._wait_flowing()
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._wait_flowing()
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()
