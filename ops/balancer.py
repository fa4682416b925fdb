"""A small TCP load balancer for running several replicas of a service on one machine (the replica system test
and benchmarks): it does what a Kubernetes Service or a cloud load balancer does for the replicas behind it.

Each new client connection goes to the next replica, round robin, among those whose `/readyz` answered 200 at
the last check (every `--interval` seconds, `--timeout` to answer); a replica that is not ready gets no new
connections, and the connections open to it are closed (so a client waiting on a frozen replica sees the
connection drop and retries elsewhere, as it would behind a proxy that ejects a failed host). A replica that
refuses a connection is skipped for that connection.

    python -m ops.balancer --listen 127.0.0.1:8001 --backend 127.0.0.1:18001 --backend 127.0.0.1:28001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
from dataclasses import dataclass, field


@dataclass
class Backend:
    host: str
    port: int
    ready: bool = False
    connections: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


async def readyz(backend: Backend, timeout_s: float) -> bool:
    """True if the replica answers 200 on /readyz within `timeout_s` (HTTP/1.0, one request, no client library:
    the balancer must not hang on a frozen replica)."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(backend.host, backend.port)
            try:
                writer.write(f"GET /readyz HTTP/1.0\r\nHost: {backend.name}\r\n\r\n".encode())
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        return status_line.split(b" ")[1:2] == [b"200"]
    except (OSError, TimeoutError, IndexError):
        return False


async def watch(backends: list[Backend], interval_s: float, timeout_s: float) -> None:
    while True:
        results = await asyncio.gather(*(readyz(b, timeout_s) for b in backends))
        for backend, ok in zip(backends, results, strict=True):
            if backend.ready and not ok:
                for writer in list(backend.connections):  # eject: its clients retry elsewhere
                    writer.close()
            backend.ready = ok
        await asyncio.sleep(interval_s)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Balancer:
    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends
        self._turn = itertools.count()

    async def connect(self) -> tuple[Backend, asyncio.StreamReader, asyncio.StreamWriter] | None:
        start = next(self._turn)
        for i in range(len(self.backends)):
            backend = self.backends[(start + i) % len(self.backends)]
            if not backend.ready:
                continue
            try:
                async with asyncio.timeout(2):
                    reader, writer = await asyncio.open_connection(backend.host, backend.port)
                return backend, reader, writer
            except (OSError, TimeoutError):
                continue
        return None

    async def serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        chosen = await self.connect()
        if chosen is None:  # no replica ready: refuse, as a load balancer with no healthy host does
            client_writer.close()
            return
        backend, reader, writer = chosen
        backend.connections.update((client_writer, writer))
        try:
            await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))
        finally:
            backend.connections.difference_update((client_writer, writer))


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, type=_address, help="HOST:PORT to accept clients on")
    parser.add_argument("--backend", action="append", required=True, type=_address, help="a replica's HOST:PORT")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between readiness checks")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds a replica has to answer /readyz")
    args = parser.parse_args(argv)
    backends = [Backend(host, port) for host, port in args.backend]
    balancer = Balancer(backends)
    server = await asyncio.start_server(balancer.serve, *args.listen)
    watcher = asyncio.create_task(watch(backends, args.interval, args.timeout))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    watcher.cancel()


if __name__ == "__main__":
    asyncio.run(main())
