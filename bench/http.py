"""`POST /v1/households` and `GET /v1/households/{id}` under wrk, beside a bare FastAPI endpoint (`bench.bare`)
doing the same database work.

Each server is one uvicorn process on SQLite (`kaenkhun serve registry`, bus off, log level WARNING; and
`uvicorn bench.bare:app`), pinned with taskset to CPU 0; wrk runs pinned to CPU 1 (one thread, 16
connections, loopback). POST bodies are households of three people with Thai names and a fresh valid
citizen ID each (generated in wrk's Lua); GET reads households created beforehand, at random.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import prepare
from ops.broker import free_port
from services.registry.settings import RegistrySettings
from shared.auth import issue_token
from shared.settings import REPO_ROOT

SERVER_CPU, CLIENT_CPU = "0", "1"

POST_LUA = r"""
local counter = 0
local function citizen_id()
  local digits, sum = {}, 0
  digits[1] = 1
  for i = 2, 12 do digits[i] = math.random(0, 9) end
  for i = 1, 12 do sum = sum + digits[i] * (14 - i) end
  digits[13] = (11 - sum % 11) % 10
  return table.concat(digits)
end
local function person(relation, title, first, sex, born)
  return string.format('{"citizen_id":"%s","title":"%s","first_name":"%s","last_name":"ศรีสุข",' ..
    '"sex":"%s","birth_date":"%s","relation":"%s"}', citizen_id(), title, first, sex, born, relation)
end
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
request = function()
  counter = counter + 1
  local body = '{"address":{"subdistrict_code":"400101","village_no":3,"house_no":"' .. counter .. '/7"},' ..
    '"sources":["tpmap"],"welfare_card":true,"members":[' ..
    person("head", "นาย", "สมชาย", "male", "1975-03-01") .. "," ..
    person("spouse", "นาง", "บุญเรือน", "female", "1978-07-12") .. "," ..
    person("child", "เด็กหญิง", "ดวงใจ", "female", "2012-11-30") .. "]}"
  return wrk.format("POST", PATH, HEADERS, body)
end
"""

GET_LUA = r"""
local ids = {IDS}
math.randomseed(os.time())
request = function()
  return wrk.format("GET", PATH .. "/" .. ids[math.random(1, #ids)], HEADERS)
end
"""


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, script: str, seconds: int, connections: int = 16) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, encoding="utf-8") as f:
        f.write(script)
    try:
        out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                              "--latency", "-s", f.name, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                _ms(latency["50"]), _ms(latency["99"]),
                int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
                (int(errors.group(1)) if errors else 0) + (sum(map(int, socket_errors.groups())) if socket_errors
                                                           else 0))


def lua(template: str, path: str, headers: dict[str, str], ids: list[str] | None = None) -> str:
    lua_headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
    script = f'PATH = "{path}"\nHEADERS = {lua_headers}\n' + template
    return script.replace("{IDS}", "{" + ", ".join(f'"{i}"' for i in ids or []) + "}")


def post_json(url: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, json.dumps(body).encode(), headers | {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        answer: dict[str, object] = json.loads(response.read())
        return answer


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def seed_bodies(n: int) -> list[dict[str, object]]:
    import random

    from bench.registry import citizen_id

    rng = random.Random(11)
    return [{"address": {"subdistrict_code": "400102", "village_no": 5, "house_no": f"{i}/1"},
             "sources": ["tpmap"], "welfare_card": True,
             "members": [{"citizen_id": citizen_id(rng), "title": "นาง", "first_name": "มาลี", "last_name": "ใจดี",
                          "sex": "female", "birth_date": "1970-05-01", "relation": "head"}]} for i in range(n)]


def measure(seconds: int) -> dict[str, tuple[Load, Load]]:
    """{"POST": (registry, bare), "GET": (registry, bare)}."""
    results: dict[str, list[Load]] = {"POST": [], "GET": []}
    with tempfile.TemporaryDirectory(prefix="kaenkhun-bench-http-") as tmp:
        folder = Path(tmp)
        # No rate limit and log level WARNING: bench.prepare.
        env = os.environ | {"KAENKHUN_DATA_DIR": str(folder), "KAENKHUN_REGISTRY_RUN_BUS": "false"}
        env.pop("KAENKHUN_REGISTRY_DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "ops.cli", "migrate", "registry"], env=env, cwd=REPO_ROOT,
                       check=True, capture_output=True)
        shutil.copy(folder / "registry.db", folder / "bare.db")  # the same migrated schema, still empty
        token = issue_token(RegistrySettings().auth, client_id="bench", areas=["*"],
                            scopes=["registry:read", "registry:write", "registry:lookup"])
        auth = {"Authorization": f"Bearer {token}"}
        for label, command, base, path in (
                ("registry", [sys.executable, "-m", "ops.cli", "serve", "registry"], "", "/v1/households"),
                ("bare", [sys.executable, "-m", "uvicorn", "bench.bare:app", "--log-level", "warning"], "",
                 "/households")):
            port = free_port()
            server_env = env | {"KAENKHUN_REGISTRY_PORT": str(port), "KAENKHUN_BENCH_DB": str(folder / "bare.db")}
            if label == "bare":
                command = [*command, "--port", str(port)]
            server = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], env=server_env, cwd=REPO_ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}{base}"
                wait_up(url + "/openapi.json")
                ids = [str(post_json(url + path, body, auth)["id"]) for body in seed_bodies(500)]
                wrk(url + path, lua(POST_LUA, path, auth | {"Content-Type": "application/json"}), 3)  # warm up
                results["POST"].append(wrk(url + path, lua(POST_LUA, path, auth | {
                    "Content-Type": "application/json"}), seconds))
                results["GET"].append(wrk(url + path, lua(GET_LUA, path, auth, ids), seconds))
            finally:
                server.terminate()
                server.wait(timeout=20)
    return {k: (v[0], v[1]) for k, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args(argv)
    prepare("wrk", "taskset")
    for method, (registry, bare) in measure(args.seconds).items():
        print(f"{method:4} registry {registry.requests_per_s:8,.0f} req/s p99 {registry.p99_ms:7.1f} ms "
              f"({registry.errors} errors)   bare {bare.requests_per_s:8,.0f} req/s p99 {bare.p99_ms:7.1f} ms   "
              f"ratio {registry.requests_per_s / bare.requests_per_s:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
