"""Hostile uploads and requests over real HTTP (the registry under uvicorn): an endless CSV stops at the limit
without filling memory or disk, file names are labels and never paths, malformed rows are rejected row by row,
overlong headers never reach the app."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ops.scratchdb import ScratchDatabases
from services import load
from services.registry.imports.schemas import COLUMNS
from services.registry.models import ImportChunk, ImportJob
from shared import migrations
from shared.db import transaction
from shared.imports import upload_name
from tests.kit import apps
from tests.kit.apps import problem
from tests.kit.env import NO_BROKER
from tests.kit.registry import ALL, citizen_id

SQLITE = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
LIMIT = 8 * 1024 * 1024
TEN_MILLION = 10_000_000
BOUNDARY = "kaenkhun-hostile-boundary"


class Served:
    def __init__(self, client: httpx.AsyncClient, app: Any, headers: dict[str, str], data_dir: Path) -> None:
        self.client, self.app, self.headers, self.data_dir = client, app, headers, data_dir

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw connection to the server, to send what an HTTP client library would not."""
        return await asyncio.open_connection(self.client.base_url.host, self.client.base_url.port)

    def files(self) -> list[Path]:
        """Files in the data folder other than the database's (an upload is stored in the database)."""
        return [p for p in self.data_dir.rglob("*") if p.is_file() and ".db" not in p.name]

    async def count(self, table: type[ImportJob | ImportChunk]) -> int:
        async with transaction(self.app.state.sessionmaker) as session:
            return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def served(databases: ScratchDatabases, tmp_path: Path) -> AsyncIterator[Served]:
    settings = apps.make_settings("registry", await databases.new("registry"), NO_BROKER,
                                  run_bus=False, import_max_bytes=LIMIT, data_dir=tmp_path)
    app = load("registry").create_app(settings)
    async with apps.serving(app) as base:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            yield Served(client, app, apps.bearer(settings.auth, *ALL), tmp_path)


class EndlessCsv:
    """A multipart upload of a household CSV of ten million rows, made as it is sent; counts what was sent."""

    def __init__(self) -> None:
        self.rows = self.bytes = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        rng = random.Random(10)
        head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
                "Content-Type: text/csv\r\n\r\n" + ",".join(COLUMNS) + "\r\n")
        yield head.encode()
        while self.rows < TEN_MILLION:
            chunk = "".join(f"H{self.rows + n},400101,5,{n}/1,,,tpmap,true,{citizen_id(rng)},นาย,ประเสริฐ,ศรีสุข,"
                            "male,1965-03-01,head,false\r\n" for n in range(1000)).encode()
            self.rows += 1000
            self.bytes += len(chunk)
            yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


@SQLITE
async def test_a_ten_million_row_csv_is_refused_at_the_limit_without_filling_memory(served: Served) -> None:
    upload = EndlessCsv()
    content_type = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    tracemalloc.start()
    try:
        response = await served.client.post("/v1/imports", content=upload, headers=served.headers | content_type)
    except httpx.TransportError:
        # The server answers 413 as soon as the upload passes the limit and closes the connection (it will not
        # read the rest): a client still writing, as httpx is, may see the reset before the answer.
        response = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if response is not None:
        assert f"{LIMIT + 64 * 1024:,}" in problem(response, 413)["detail"]
    refused = served.app.state.metrics.http_requests_total.labels("POST", "/v1/imports", "413")._value.get()
    assert refused == 1
    print(f"\nendless upload: the client had sent {upload.rows:,} rows ({upload.bytes:,} bytes) when the server "
          f"refused it at {LIMIT + 64 * 1024:,}; {peak / 2**20:.1f} MiB traced at the peak; answer "
          f"{'413' if response is not None else 'a reset'}")
    assert upload.rows < TEN_MILLION and upload.bytes < 2 * LIMIT  # the server stopped taking it near the limit
    assert peak < LIMIT, f"{peak:,} bytes held while refusing the upload"  # Starlette spools past 1 MiB to disk
    assert await served.count(ImportJob) == await served.count(ImportChunk) == 0 and not served.files()

    # Declared too large: answered from the headers alone, before a byte of the body is sent.
    reader, writer = await served.connect()
    writer.write(f"POST /v1/imports HTTP/1.1\r\nHost: x\r\nAuthorization: {served.headers['Authorization']}\r\n"
                 f"Content-Type: {content_type['Content-Type']}\r\nContent-Length: {TEN_MILLION * 100}\r\n\r\n"
                 .encode())
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413 ") and f"{TEN_MILLION * 100:,}".encode() in answer, answer
    assert (await served.client.get("/healthz")).status_code == 200  # and the server carries on


@pytest.mark.parametrize(("given", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("C:\\ข้อมูล\\บ้าน ต.ในเมือง.csv", "บ้าน ต.ในเมือง.csv"),
    ("/abs/path/x.csv\x00.exe", "x.csv.exe"),
    ("a\r\nSet-Cookie: x=1.csv", "aSet-Cookie: x=1.csv"),
    ("..", "upload.csv"),
    ("", "upload.csv"),
    (None, "upload.csv"),
    ("ก" * 300 + ".csv", "ก" * 255),
])
def test_upload_names_are_labels(given: str | None, kept: str) -> None:
    assert upload_name(given) == kept


@SQLITE
async def test_a_path_in_an_upload_name_writes_no_file(served: Served) -> None:
    csv = apps.csv_bytes([], COLUMNS)
    response = await served.client.post("/v1/imports", headers=served.headers,
                                        files={"file": ("../../../escaped.csv", csv, "text/csv")})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    await served.app.state.imports.wait(job_id)
    job = (await served.client.get(f"/v1/imports/{job_id}", headers=served.headers)).json()
    assert job["filename"] == "escaped.csv"
    assert not list(served.data_dir.parent.rglob("escaped.csv"))
    assert served.files() == []  # the upload was stored in the database, and deleted with the job's end
    assert await served.count(ImportChunk) == 0


@SQLITE
async def test_malformed_csv_rows_are_rejected_one_by_one(served: Served) -> None:
    rng = random.Random(3)
    good = {"household_key": "G", "subdistrict_code": "400101", "village_no": "5", "house_no": "7/1", "lat": "",
            "lon": "", "sources": "tpmap", "welfare_card": "true", "title": "นาย", "first_name": "ประเสริฐ",
            "last_name": "ศรีสุข", "sex": "male", "birth_date": "1965-03-01", "relation": "head",
            "disability": "false"}
    rows = [good | {"citizen_id": citizen_id(rng)},
            good | {"household_key": "NUL", "citizen_id": citizen_id(rng), "first_name": "ประ\x00เสริฐ"},
            good | {"household_key": "LONG", "citizen_id": citizen_id(rng), "last_name": "ศ" * 200_000},
            good | {"household_key": "FORMULA", "citizen_id": citizen_id(rng), "first_name": "=cmd|' /C calc'!A0"},
            good | {"household_key": "QUOTE", "citizen_id": citizen_id(rng), "house_no": 'he said "12/3"\r\nx'}]
    content = apps.csv_bytes(rows, COLUMNS) + b'"unterminated,quote\r\n'
    response = await served.client.post("/v1/imports", headers=served.headers,
                                        files={"file": ("rows.csv", content, "text/csv")})
    assert response.status_code == 202, response.text
    await served.app.state.imports.wait(response.json()["id"])
    job = (await served.client.get(response.headers["location"], headers=served.headers)).json()
    assert job["status"] == "done", job
    assert job["households_created"] == 2, job  # G, and FORMULA: a name is text, neutralised only in exports
    rejected = {e["row"]: e["message"] for e in job["errors"]}
    assert set(rejected) >= {3, 4, 6}, job
    assert "control characters" in rejected[3]


@SQLITE
async def test_overlong_headers_never_reach_the_app(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /v1/households HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100_000 + b"\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ") and b"application/problem+json" in answer, answer[:300]
    long_token = {"Authorization": "Bearer " + "e" * 12_000}  # long, under the server's header limit
    assert problem(await served.client.get("/v1/households", headers=long_token), 401)["type"].endswith(
        "unauthorized")
    assert (await served.client.get("/v1/households", headers=served.headers)).status_code == 200
