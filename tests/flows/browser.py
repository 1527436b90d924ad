"""Headless Chromium for tests, driven over its DevTools protocol the way docs/img/shoot.py drives it
(that script's own launcher and page client are loaded from it): no Playwright, only `websockets`.

    with Browser() as browser:
        browser.open(url, wait_for="Paused")
        browser.run("byText('button', 'Resume').click(); await sleep(2000);")
        text = browser.value("document.body.innerText")
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import time
from pathlib import Path

SHOOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "shoot.py"


def chromium_missing() -> str | None:
    """Why no browser test can run here, or None."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium is not installed (Debian package `chromium`; .ci/run installs it)"
    return None


def _shoot():
    spec = importlib.util.spec_from_file_location("llmops_docs_shoot", SHOOT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Browser:
    """One Chromium page on a loop of its own; each call runs to completion before it returns."""

    def __init__(self, width: int = 1440, height: int = 1000):
        self.width, self.height = width, height

    def __enter__(self) -> Browser:
        import websockets

        self.shoot = _shoot()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = self.shoot.start_chromium(port, self.width, self.height)
        self.loop = asyncio.new_event_loop()
        self.ws = self.loop.run_until_complete(websockets.connect(self.shoot.page_socket(port), max_size=64 * 2**20))
        self.page = self.shoot.Page(self.ws)
        self._await(self.page.send("Page.enable"))
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._await(self.ws.close())
        finally:
            self.loop.close()
            self.process.terminate()
            self.process.wait(10)

    def _await(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def open(self, url: str, wait_for: str, timeout_s: float = 90) -> None:
        self._await(self.page.send("Page.navigate", url=url))
        self.wait_for(wait_for, timeout_s)
        self._await(self.page.evaluate(self.shoot.HELPERS))

    def wait_for(self, text: str, timeout_s: float = 60) -> None:
        try:
            self._await(self.page.wait_for_text(text, timeout_s))
        except SystemExit as stop:  # shoot.py's way of saying so, made a test failure
            raise AssertionError(f"{stop}; the page shows:\n{self.value('document.body.innerText')[:3000]}") from None

    def value(self, expression: str):
        return self._await(self.page.evaluate(expression))

    def run(self, script: str) -> None:
        """JavaScript run as the body of an async function: clicks and typing, as a person does them."""
        self._await(self.page.evaluate("(async () => {" + script + "})()"))

    def screenshot(self, path: Path) -> None:
        import base64

        shot = self._await(self.page.send("Page.captureScreenshot", format="png"))
        path.write_bytes(base64.b64decode(shot["data"]))

    def poll(self, expression: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.value(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression} stayed false for {timeout_s:.0f} s")
            time.sleep(0.5)
