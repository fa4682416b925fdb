"""`kaenkhun up` (what `make up` runs): it says ready, every /readyz answers 200, Ctrl-C leaves no process.

How fast it gets ready is not asserted: no test asserts wall-clock time (pytest-timeout ends a hang)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ops.broker import free_port, port_open
from services import SERVICES
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.system


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def _run_up(env: dict[str, str], ports: dict[str, int]) -> None:
    process = subprocess.Popen([sys.executable, "-m", "ops.cli", "up"], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "all services ready" in line:
                break
        output = "".join(lines)
        assert "all services ready" in output, output
        for name in SERVICES:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/readyz", timeout=5) as response:
                assert response.status == 200
        pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
        assert len(pids) == len(SERVICES) + 1, output  # the services and the broker
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + rest
    assert "stopped" in rest
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)], "processes left behind"
    assert not any(port_open("127.0.0.1", port) for port in ports.values())


def test_up_gets_ready_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVICES} | {"broker": free_port()}
    env = dict(os.environ, KAENKHUN_DATA_DIR=str(tmp_path), KAENKHUN_BROKER_PORT=str(ports["broker"]))
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("KAENKHUN_KAFKA_BOOTSTRAP_SERVERS", None)
    for name in SERVICES:
        env[f"KAENKHUN_{name.upper()}_PORT"] = str(ports[name])
    _run_up(env, ports)
    databases = {p.name: p.stat().st_ino for p in tmp_path.glob("*.db")}
    assert set(databases) == {f"{name}.db" for name in SERVICES}
    # A second `up` keeps the data: same database files, migrations already current.
    _run_up(env, ports)
    assert {p.name: p.stat().st_ino for p in tmp_path.glob("*.db")} == databases
