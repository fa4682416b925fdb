"""A real browser for the dashboard's tests: Debian's headless Chromium driven through chromedriver's W3C
WebDriver HTTP API (plain httpx, no client library), so a test can click, go Back and read the address, the
DOM and a screenshot. Skips with how to install them when Chromium or chromedriver are missing (`system_tool`)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from ops.broker import free_port
from tests.kit.env import system_tool

INSTALL = "apt-get install chromium chromium-driver fonts-thai-tlwg"
_ELEMENT = "element-6066-11e4-a52e-4f735466cecc"  # the W3C key of an element reference


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Browser:
    """One browser session: each method is one WebDriver command."""

    def __init__(self, http: httpx.AsyncClient, session: str) -> None:
        self.http, self.session = http, session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.request(method, f"/session/{self.session}{path}", json=body)
        assert response.status_code == 200, response.text[:2000]
        return response.json()["value"]

    async def open(self, url: str) -> None:
        await self._call("POST", "/url", {"url": url})
        await self.ready()

    async def script(self, source: str, *args: Any) -> Any:
        return await self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    async def ready(self, tries: int = 200) -> None:
        """Wait until the page has drawn (body[data-ready] = true) or failed, whose message is then the error;
        `tries` tenths of a second at most."""
        for _ in range(tries):
            state = await self.script("return document.body && document.body.dataset.ready || ''")
            if state == "true":
                return
            assert state != "error", await self.script("return document.getElementById('status').textContent")
            await asyncio.sleep(0.1)
        raise AssertionError("the page did not finish drawing")

    async def click(self, css: str) -> None:
        found = await self._call("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and found, f"no element {css}: {found}"
        element = found.get(_ELEMENT) or next(iter(found.values()))
        await self._call("POST", f"/element/{element}/click", {})

    async def back(self) -> None:
        await self._call("POST", "/back", {})

    async def url(self) -> str:
        url: str = await self._call("GET", "/url")
        return url

    async def dom(self) -> str:
        html: str = await self.script("return document.documentElement.outerHTML")
        return html

    async def media(self, kind: str) -> None:
        """Emulate a CSS media type (\"print\" for the print styles, \"\" for the screen again)."""
        await self._call("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia", "params": {"media": kind}})

    async def downloads_to(self, folder: Path) -> None:
        """Save what the page downloads into `folder` (headless Chromium drops downloads otherwise)."""
        await self._call("POST", "/goog/cdp/execute", {"cmd": "Browser.setDownloadBehavior", "params": {
            "behavior": "allow", "downloadPath": str(folder)}})

    async def console(self) -> list[str]:
        """The messages the page logged (console, CSP violations, failed loads) since last asked."""
        entries = await self._call("POST", "/se/log", {"type": "browser"})
        return [entry["message"] for entry in entries]

    async def screenshot(self, path: Path) -> None:
        """The whole page as PNG, past the window's height too."""
        shot = await self._call("POST", "/goog/cdp/execute", {"cmd": "Page.captureScreenshot", "params": {
            "format": "png", "captureBeyondViewport": True}})
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))


@asynccontextmanager
async def browser(width: int = 1400, height: int = 1900) -> AsyncIterator[Browser]:
    chromium = system_tool("chromium", "chromium-browser", install=INSTALL)
    driver = system_tool("chromedriver", install=INSTALL)
    port = free_port()
    process = await asyncio.create_subprocess_exec(driver, f"--port={port}", stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(100):
                try:
                    if (await http.get("/status")).json()["value"]["ready"]:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            options = {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", f"--window-size={width},{height}"]}
            created = await http.post("/session", json={"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options,
                "goog:loggingPrefs": {"browser": "ALL"}}}})
            assert created.status_code == 200, created.text[:2000]
            session = created.json()["value"]["sessionId"]
            try:
                yield Browser(http, session)
            finally:
                await http.delete(f"/session/{session}")
    finally:
        process.terminate()
        await process.wait()
