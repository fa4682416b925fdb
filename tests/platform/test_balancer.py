"""The load balancer the replica tests put in front of a service's replicas (`ops.balancer`): round robin among
the replicas whose /readyz answers 200, nothing to one that stops answering, its open connections cut."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ops.broker import free_port
from shared.settings import REPO_ROOT


class Replica:
    """An HTTP server answering its own name; /readyz 200 while `ready`."""

    def __init__(self, name: str) -> None:
        self.name, self.ready, self.port = name, True, free_port()
        replica = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status = 200 if self.path != "/readyz" or replica.ready else 503
                body = replica.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def replicas() -> Iterator[tuple[str, list[Replica]]]:
    backends = [Replica("one"), Replica("two")]
    port = free_port()
    balancer = subprocess.Popen([sys.executable, "-m", "ops.balancer", f"--listen=127.0.0.1:{port}", "--interval=0.1",
                                 *(f"--backend=127.0.0.1:{b.port}" for b in backends)], cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the balancer did not start"
            time.sleep(0.1)
        time.sleep(0.3)  # both replicas seen ready
        yield url, backends
    finally:
        balancer.terminate()
        balancer.wait(10)
        for backend in backends:
            backend.stop()


def answers(url: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        with httpx.Client() as client:  # a new connection each time: the balancer balances connections
            out.append(client.get(url, timeout=2).text)
    return out


def test_connections_alternate_and_skip_a_replica_that_is_not_ready(replicas: tuple[str, list[Replica]]) -> None:
    url, (one, two) = replicas
    assert sorted(answers(url, 4)) == ["one", "one", "two", "two"]
    two.ready = False
    time.sleep(0.4)
    assert answers(url, 4) == ["one"] * 4
    two.ready = True
    time.sleep(0.4)
    assert "two" in answers(url, 4)


def test_a_replica_that_dies_gets_no_more_connections(replicas: tuple[str, list[Replica]]) -> None:
    url, (one, two) = replicas
    one.stop()  # refuses connections from now on, before any readiness check notices
    assert answers(url, 6) == ["two"] * 6


def test_open_connections_to_a_replica_going_unready_are_cut(replicas: tuple[str, list[Replica]]) -> None:
    url, (one, two) = replicas
    with httpx.Client() as client:
        first = client.get(url, timeout=2).text
        (one if first == "one" else two).ready = False
        time.sleep(0.4)
        # The kept-alive connection was closed by the balancer: the client's next request opens a new one,
        # which goes to the ready replica (the old connection would have reached the unready one).
        assert client.get(url, timeout=2).text != first
