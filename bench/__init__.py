"""Benchmarks; each prints figures and asserts no time (`python -m bench.<name>`).

Every benchmark's `main` calls `prepare` first, so that `make bench` and each `make bench-<part>` run under the
same conditions whichever of them is run, on its own or in the suite.
"""

import asyncio
import os
import shutil
import subprocess

import httpx

# Set for the benchmark's own process and every process it starts: no rate limit (a benchmark is one caller
# sending as fast as it can; bench.load, which must stay under the default limits, removes KAENKHUN_LIMITS_*
# from its services' environment itself).
ENVIRONMENT = {"KAENKHUN_LIMITS_RATE_PER_S": "0"}
# Unless the shell says otherwise: quiet services.
DEFAULTS = {"KAENKHUN_LOG_LEVEL": "WARNING"}
# The programs a benchmark may need beside Python, and the Debian package of each.
PACKAGES = {"wrk": "wrk", "taskset": "util-linux"}


def prepare(*tools: str) -> None:
    """Set the benchmarks' environment and logging, and make sure `tools` are there: a missing one is installed
    from Debian's packages when running as root with apt-get (as .ci/run does for Chromium); otherwise the
    benchmark stops with one line saying what is missing and how to get it."""
    from shared.observability import configure_logging

    os.environ.update(ENVIRONMENT)
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    configure_logging(level="WARNING", json=False)
    missing = [tool for tool in tools if shutil.which(tool) is None]
    packages = " ".join(sorted({PACKAGES[tool] for tool in missing}))
    tried = bool(missing) and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if tried:
        print(f"installing {packages} (Debian) for {', '.join(missing)} …", flush=True)
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages.split()], env=env, stdout=subprocess.DEVNULL,
                       check=False)
        missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"this benchmark needs {', '.join(missing)}, not found on PATH"
                         + (f" after `apt-get install {packages}`" if tried else
                            f": install Debian's {packages} (`apt-get install {packages}`; done for you as root)"))


async def wait_healthy(client: httpx.AsyncClient, tries: int = 300) -> None:
    """Wait until a service started as its own process answers /healthz."""
    for _ in range(tries):
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{client.base_url} did not become healthy")
