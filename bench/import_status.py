"""Import status while an import runs: `GET /v1/imports/{id}` polled every `--every-ms` during a registry import
of `--persons` people, served by `kaenkhun serve registry` in its own process (bus off), on SQLite and, when
KAENKHUN_TEST_POSTGRES_URL (or `--postgres-url`) is set, on PostgreSQL. Prints p50/p95/max of the status reads
and of `/healthz` read just after each (the event loop's own delay), the import's time, and the progress the
status showed (prints figures, asserts no time)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import prepare, wait_healthy
from bench.registry import write_csv
from ops.broker import free_port
from ops.scratchdb import ScratchDatabases
from services.registry.settings import RegistrySettings
from shared.auth import issue_token
from shared.settings import REPO_ROOT


@dataclass
class Polled:
    status_s: list[float] = field(default_factory=list)
    healthz_s: list[float] = field(default_factory=list)
    progress: list[Any] = field(default_factory=list)
    import_s: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def figures(samples: list[float]) -> str:
        if len(samples) < 2:
            return "too few samples"
        cuts = statistics.quantiles(samples, n=100)
        return (f"p50 {cuts[49] * 1000:7.1f} ms  p95 {cuts[94] * 1000:7.1f} ms  max {max(samples) * 1000:7.1f} ms "
                f"({len(samples)} reads)")


async def poll_import(url: str | None, folder: Path, csv_path: Path, every_s: float) -> Polled:
    """Serve the registry on `url` (None: SQLite in `folder`), upload the file, poll its status until it ends."""
    port = free_port()
    # PYTHONPATH: this checkout's code, also when the virtualenv's editable install points at another worktree.
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "KAENKHUN_DATA_DIR": str(folder / "serve"),
                        "KAENKHUN_REGISTRY_PORT": str(port), "KAENKHUN_REGISTRY_RUN_BUS": "false",
                        "KAENKHUN_LOG_LEVEL": "WARNING"}
    env.pop("KAENKHUN_REGISTRY_DATABASE_URL", None)
    if url is not None:
        env["KAENKHUN_REGISTRY_DATABASE_URL"] = url
    kaenkhun = Path(sys.executable).parent / "kaenkhun"
    migrate = await asyncio.create_subprocess_exec(kaenkhun, "migrate", "registry", env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if await migrate.wait() != 0:
        raise RuntimeError("kaenkhun migrate registry failed")
    server = await asyncio.create_subprocess_exec(kaenkhun, "serve", "registry", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token = issue_token(RegistrySettings().auth, client_id="bench", scopes=["registry:write", "registry:lookup"],
                        areas=["*"])
    polled = Polled()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            await wait_healthy(client)
            started = time.perf_counter()
            with csv_path.open("rb") as file:
                response = await client.post("/v1/imports", files={"file": (csv_path.name, file, "text/csv")})
            assert response.status_code == 202, response.text
            location = response.headers["Location"]
            while True:
                await asyncio.sleep(every_s)
                t = time.perf_counter()
                response = await client.get(location, params={"errors_limit": 10})
                polled.status_s.append(time.perf_counter() - t)
                assert response.status_code == 200, response.text
                job = response.json()
                t = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                polled.healthz_s.append(time.perf_counter() - t)
                polled.progress.append(job.get("progress"))
                if job["status"] in ("done", "failed"):
                    polled.import_s = time.perf_counter() - started
                    polled.final = job
                    return polled
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


async def measure(persons: int, every_ms: int, kinds: list[str], postgres_url: str | None,
                  ) -> list[tuple[str, Polled]]:
    """(database, what the polling saw) for each of `kinds` (sqlite, postgres: when its admin URL is given)."""
    found = []
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-import-status-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "people.csv"
        write_csv(csv_path, persons)
        for kind in [k for k in kinds if k == "sqlite" or (k == "postgres" and postgres_url)]:
            dbs = ScratchDatabases(kind, folder, postgres_url, prefix="kk_bench")
            try:
                url = await dbs.new("status") if kind == "postgres" else None
                polled = await poll_import(url, folder / kind, csv_path, every_ms / 1000)
            finally:
                await dbs.drop_all()
            if polled.final.get("status") != "done":
                raise SystemExit(f"import status: the import on {kind} ended {polled.final}")
            found.append((kind, polled))
    return found


def quantile_ms(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


async def run(args: argparse.Namespace) -> None:
    print(f"import status during a registry import of {args.persons:,} persons, `GET /v1/imports/{{id}}` every "
          f"{args.every_ms} ms, then `GET /healthz`, over loopback HTTP to `kaenkhun serve registry` (one process, "
          "bus off)")
    for kind, polled in await measure(args.persons, args.every_ms, args.databases.split(","), args.postgres_url):
        final = polled.final
        shown = [p for p in polled.progress if p is not None]
        print(f"  {kind:9} import {polled.import_s:6.1f} s, {final['status']}, "
              f"{final.get('persons_created', 0):,} persons")
        print(f"  {'':9} status   {Polled.figures(polled.status_s)}")
        print(f"  {'':9} /healthz {Polled.figures(polled.healthz_s)}")
        if shown:
            middle = shown[len(shown) // 2]
            print(f"  {'':9} progress halfway through the reads: {middle}; last: {shown[-1]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_status", description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--every-ms", type=int, default=150)
    parser.add_argument("--databases", default="sqlite,postgres", help="which of sqlite,postgres to measure")
    parser.add_argument("--postgres-url", default=os.environ.get("KAENKHUN_TEST_POSTGRES_URL"),
                        help="admin URL for throwaway databases; PostgreSQL is measured when given")
    args = parser.parse_args(argv)
    prepare()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
