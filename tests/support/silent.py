"""A TCP proxy on 127.0.0.1 that can make the server behind it stop answering.

`pause()` is a database that goes silent (its processes stopped, or a network partition): open
connections stay open and new ones are accepted by the kernel, but no byte goes either way until
`resume()`. Nothing is refused or reset, so a client notices only through its own timeouts.
Bytes are held, not dropped, so after `resume()` the connections carry on as after SIGCONT.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class SilentProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._flowing.wait()
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.append(upstream_writer)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SilentProxy]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def silent_proxy(url: str) -> AsyncIterator[tuple[SilentProxy, str]]:
    """A proxy in front of the PostgreSQL at `url`; yields it and the URL through it."""
    credentials, rest = url.split("@", 1)
    address, database = rest.split("/", 1)
    host, port = address.rsplit(":", 1)
    async with SilentProxy(host, int(port)).running() as proxy:
        yield proxy, f"{credentials}@127.0.0.1:{proxy.port}/{database}"
