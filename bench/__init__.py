"""Benchmarks; each prints figures and asserts no time (`python -m bench.<name>`)."""

import asyncio

import httpx


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
