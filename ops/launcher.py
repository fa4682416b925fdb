"""The whole system as separate processes. The pieces (`prepare`, `spawn`, `wait_ready`, `terminate`) are what
`kaenkhun up` runs; `System` puts them together on free ports for the system tests and the benchmarks, which
also need to kill a service, restart it and read how much memory each one used."""

from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ops import demo
from ops.broker import LocalBroker, free_port
from services import SERVICES
from services.assistance.settings import DEV_WEBHOOK_SECRET
from shared.settings import DEV_CLIENT_SECRET, REPO_ROOT, KafkaSettings


def prepare(env: dict[str, str], names: Sequence[str], *, quiet: bool = True) -> None:
    """Migrate the services' databases and create every topic (both idempotent), as separate commands; their
    output shown unless `quiet`."""
    for command in (["migrate", *names], ["topics"]):
        done = subprocess.run([sys.executable, "-m", "ops.cli", *command], env=env, cwd=REPO_ROOT,
                              capture_output=quiet)
        if done.returncode != 0:
            output = (done.stdout or b"") + (done.stderr or b"")
            raise RuntimeError(f"kaenkhun {' '.join(command)} exited with code {done.returncode}\n"
                               + output.decode(errors="replace")[-3000:])


def spawn(name: str, env: dict[str, str], log_path: Path, cpus: str | None = None) -> subprocess.Popen[bytes]:
    """`kaenkhun serve NAME` in a session of its own (a Ctrl-C reaches only the launcher, which stops the
    services in order), its output appended to `log_path`; pinned to `cpus` with taskset if given."""
    pin = ["taskset", "-c", cpus] if cpus else []
    with open(log_path, "ab") as log:
        return subprocess.Popen([*pin, sys.executable, "-m", "ops.cli", "serve", name], env=env, cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def ready(url: str) -> bool:
    """True if the service at `url` answers 200 on /readyz."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as response:  # noqa: S310 (a loopback URL)
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # refused, reset, 503 (HTTPError), a half-written answer
        return False


def wait_ready(processes: Mapping[str, subprocess.Popen[bytes]], urls: Mapping[str, str], logs: Mapping[str, Path],
               timeout_s: float, stopping: Callable[[], bool] = lambda: False) -> None:
    """Wait until every service answers 200 on /readyz (they start side by side); RuntimeError naming the one
    that exited (with the end of its log) or those not ready in time. Returns early once `stopping()`."""
    deadline, pending = time.monotonic() + timeout_s, set(processes)
    while pending and not stopping():
        for name in sorted(pending):
            if processes[name].poll() is not None:
                tail = logs[name].read_text(errors="replace")[-3000:] if logs[name].exists() else ""
                raise RuntimeError(f"{name} exited with code {processes[name].returncode}; see {logs[name]}\n{tail}")
            if ready(urls[name]):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout_s:.0f} s: {', '.join(sorted(pending))}")
        time.sleep(0.2)


def terminate(processes: Mapping[str, subprocess.Popen[bytes]], timeout_s: float = 20.0) -> None:
    """SIGTERM, so uvicorn runs the lifespan shutdown (relays flush, consumers commit); SIGKILL what is still
    running after `timeout_s`."""
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class System:
    """A local broker and the four services, each its own process; SQLite files in `data_dir` unless
    `database_urls` names a database for a service.

    With `replicas` > 1 each service runs as that many processes (instances `registry-1`, `registry-2`, …,
    which must share a PostgreSQL database) behind a load balancer (`ops.balancer`, one process per service)
    on the service's port: `url(name)` is the balancer, `instance_url(instance)` one replica."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, cpus: str | None = None,
                 database_urls: dict[str, str] | None = None, replicas: int = 1) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in SERVICES}
        self.replicas = replicas
        self.instance_ports = ({name: self.ports[name] for name in SERVICES} if replicas == 1 else
                               {f"{name}-{i}": free_port() for name in SERVICES for i in range(1, replicas + 1)})
        self.broker = LocalBroker(port=free_port(), log_path=data_dir / "broker.log")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.balancers: dict[str, subprocess.Popen[bytes]] = {}
        self.cpus = cpus  # taskset CPU list for the services, e.g. "0"
        self.env = dict(os.environ if env is None else env, KAENKHUN_DATA_DIR=str(data_dir))
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAENKHUN_KAFKA_BOOTSTRAP_SERVERS"):
            self.env.pop(name, None)
        for name, port in self.ports.items():
            self.env[f"KAENKHUN_{name.upper()}_PORT"] = str(port)
            self.env.pop(f"KAENKHUN_{name.upper()}_DATABASE_URL", None)
        for name, url in (database_urls or {}).items():
            self.env[f"KAENKHUN_{name.upper()}_DATABASE_URL"] = url
        self.database_urls = {name: (database_urls or {}).get(name, f"sqlite+aiosqlite:///{data_dir / name}.db")
                              for name in SERVICES}
        if replicas > 1 and any(url.startswith("sqlite") for url in self.database_urls.values()):
            raise ValueError("replicas share their service's database: give every service a PostgreSQL URL")

    @property
    def kafka(self) -> KafkaSettings:
        """Settings that reach this system's broker (for the history checker's `settle`)."""
        return KafkaSettings(bootstrap_servers=self.broker.bootstrap_servers)

    def url(self, name: str) -> str:
        """Where clients reach a service (its load balancer when it has several replicas)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def instances(self, name: str | None = None) -> list[str]:
        """The processes of a service (of every service if None): `registry`, or `registry-1`, `registry-2` …"""
        return [i for i in self.instance_ports if name is None or i == name or i.rsplit("-", 1)[0] == name]

    def instance_url(self, instance: str) -> str:
        return f"http://127.0.0.1:{self.instance_ports[instance]}"

    def loader(self, scenario: demo.Scenario | None = None, *, say: demo.Say = lambda _: None,
               timeout_s: float = 600.0) -> demo.Loader:
        """A demo loader for these services, signed in as the development staff client (`sign_in()` first)."""
        return demo.Loader(demo.Endpoints(*(self.url(name) for name in SERVICES)), client_id="khon-kaen-staff",
                           client_secret=DEV_CLIENT_SECRET, webhook_secret=DEV_WEBHOOK_SECRET,
                           scenario=scenario or demo.Scenario(), say=say, timeout_s=timeout_s)

    def start_all(self, timeout_s: float = 90.0) -> System:
        self.broker.start()
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
        prepare(self.env, SERVICES)
        for instance in self.instances():
            self.processes[instance] = self._spawn(instance)
        if self.replicas > 1:
            for name in SERVICES:
                backends = [f"--backend=127.0.0.1:{self.instance_ports[i]}" for i in self.instances(name)]
                with open(self.data_dir / f"balancer-{name}.log", "ab") as log:
                    self.balancers[name] = subprocess.Popen(
                        [sys.executable, "-m", "ops.balancer", f"--listen=127.0.0.1:{self.ports[name]}", *backends],
                        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait(self.instances(), timeout_s)
        if self.replicas > 1:
            wait_ready(self.balancers, {n: self.url(n) for n in SERVICES},
                       {n: self.data_dir / f"balancer-{n}.log" for n in SERVICES}, timeout_s)
        return self

    def _spawn(self, instance: str) -> subprocess.Popen[bytes]:
        name = instance.rsplit("-", 1)[0] if instance not in SERVICES else instance
        env = dict(self.env, **{f"KAENKHUN_{name.upper()}_PORT": str(self.instance_ports[instance])})
        return spawn(name, env, self.log(instance), self.cpus)

    def log(self, name: str) -> Path:
        return self.data_dir / f"{name}.log"

    def _wait(self, instances: Sequence[str], timeout_s: float) -> None:
        wait_ready({n: self.processes[n] for n in instances}, {n: self.instance_url(n) for n in instances},
                   {n: self.log(n) for n in instances}, timeout_s)

    def start(self, instance: str, timeout_s: float = 90.0) -> None:
        """Start one service (or replica) again and wait until its /readyz answers 200."""
        self.processes[instance] = self._spawn(instance)
        self._wait([instance], timeout_s)

    def kill(self, instance: str) -> None:
        """SIGKILL: no shutdown, no flush, no commit, as a crash or the OOM killer would."""
        process = self.processes[instance]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def freeze(self, instance: str) -> None:
        """SIGSTOP: the process holds its connections and answers nothing, as a hung node or a long GC pause."""
        self.processes[instance].send_signal(signal.SIGSTOP)

    def thaw(self, instance: str) -> None:
        self.processes[instance].send_signal(signal.SIGCONT)

    def peak_memory_mib(self) -> dict[str, float]:
        """Each running service's peak resident set (VmHWM), in MiB."""
        peaks = {}
        for name, process in self.processes.items():
            status = Path(f"/proc/{process.pid}/status")
            if process.poll() is None and status.exists():
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
                peaks[name] = int(line.split()[1]) / 1024
        return peaks

    def stop(self) -> None:
        for process in self.processes.values():  # a frozen replica would not hear SIGTERM
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
        terminate(self.balancers)
        terminate(self.processes)
        self.broker.stop()

    def rows(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        """Read a service's own database (SQLite, read-only): the truth to compare another service with."""
        connection = sqlite3.connect(f"file:{self.data_dir / name}.db?mode=ro", uri=True)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()
