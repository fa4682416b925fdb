"""The whole system as separate processes, started as `kaenkhun up` starts it: for the system tests and the
benchmarks, which also need to kill a service, restart it and read how much memory each one used."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from services import SERVICES
from services.assistance.settings import DEV_WEBHOOK_SECRET
from shared import demo
from shared.broker import LocalBroker, free_port
from shared.settings import DEV_CLIENT_SECRET, REPO_ROOT


class System:
    """A local broker and the four services, each its own process; SQLite files in `data_dir` unless
    `database_urls` names a database for a service."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, cpus: str | None = None,
                 database_urls: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in SERVICES}
        self.broker = LocalBroker(port=free_port(), log_path=data_dir / "broker.log")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
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

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def loader(self, scenario: demo.Scenario | None = None, *, say: demo.Say = lambda _: None,
               timeout_s: float = 600.0) -> demo.Loader:
        """A demo loader for these services, signed in as the development staff client (`sign_in()` first)."""
        return demo.Loader(demo.Endpoints(*(self.url(name) for name in SERVICES)), client_id="khon-kaen-staff",
                           client_secret=DEV_CLIENT_SECRET, webhook_secret=DEV_WEBHOOK_SECRET,
                           scenario=scenario or demo.Scenario(), say=say, timeout_s=timeout_s)

    def start_all(self) -> System:
        self.broker.start()
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
        for command in (["migrate"], ["topics"]):
            subprocess.run([sys.executable, "-m", "shared.cli", *command], env=self.env, cwd=REPO_ROOT, check=True,
                           capture_output=True)
        for name in SERVICES:
            self.start(name)
        return self

    def start(self, name: str, timeout_s: float = 90.0) -> None:
        """Start one service and wait until its /readyz answers 200."""
        pin = ["taskset", "-c", self.cpus] if self.cpus else []
        with open(self.data_dir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen([*pin, sys.executable, "-m", "shared.cli", "serve", name],
                                                    env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: " + (self.data_dir / f"{name}.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.url(name) + "/readyz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s")

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no flush, no commit, as a crash or the OOM killer would."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

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
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.broker.stop()

    def rows(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        """Read a service's own database (SQLite, read-only): the truth to compare another service with."""
        connection = sqlite3.connect(f"file:{self.data_dir / name}.db?mode=ro", uri=True)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()
