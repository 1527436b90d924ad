"""Screenshots of the real Prefect and MLflow UIs for docs/walkthrough-*.md, taken in headless Chromium.

    python docs/img/shoot.py shot URL OUT.png [--wait TEXT] [--js FILE] [--height 900] [--crop X,Y,W,H]
    python docs/img/shoot.py eval URL 'document.title'          # print what a page expression gives
    python docs/img/shoot.py fit IN.png OUT.png --crop X,Y,W,H   # crop and shrink a shot already taken

Chromium (Debian package `chromium`) is driven over its DevTools protocol with `websockets`, already in
the project's venv: no Playwright. The page is loaded, the script waits until TEXT is on the page (the UIs
are single-page apps that render after load), optionally runs the JavaScript in FILE (open a tab, fill a
field; each `await step(...)` it awaits waits for its result), then captures the viewport. The PNG is
resized with Pillow to at most 1440 px wide and re-quantised if over 240 KB, so the repository stays small.
Nothing on the page is edited: the JavaScript only clicks and types as a person would (shoot-js/, one
file per action; tags-expand.js only lets a scrolling box grow, so that every tag fits in one picture).

How the walkthrough images were taken (one session on a private home, as docs/walkthrough-data-scientist.md
tells: `make run` twice, `llmops worker` on the home's own Prefect server, `mlflow ui` on port 5017; the ports
and ids are those of that session: read yours from `make where`, the UIs or `llmops models`):

    J=docs/img/shoot-js; P=http://127.0.0.1:52769; M=http://127.0.0.1:5017; D=$P/deployments/deployment
    shoot.py shot $P/deployments ds-1.png --wait nightly --height 800
    shoot.py shot $D/<curate id>/run ds-2.png --wait Parameters --js $J/lib.js --js $J/curate-fill.js --height 1000
    (the same as `eval ... location.href` with --js $J/submit.js added submits the form; so for train, evaluate,
    promote)
    shoot.py shot $P/runs/flow-run/<curate run id> ds-3.png --wait "dataset 40bae" --js $J/log-dataset.js
    shoot.py shot $D/<train id>/run ds-4.png --wait Parameters --js $J/lib.js --js $J/train-fill.js
        --js $J/train-view.js
    ... ds-5 with train-bottom.js; ds-6: evaluate form with eval-fill.js; ds-7: the eval-scores artifact;
    ds-8: promote form with promote-fill.js, --height 1780 --crop 260,80,1180,1700
    rm-1: $P/runs/flow-run/<paused promote run> --wait Paused --js $J/resume-open.js --js $J/approve-fill.js
        --crop 455,10,530,980 (and with $J/modal-submit.js added, as `eval`, the approval is submitted)
    MLflow pages: open "$M/#/experiments" with --js $J/mlflow-clean.js (Model training mode; for GenAI pages such as
    Prompts, $J/mlflow-assistant-close.js only closes MLflow's assistant panel), then a file holding
    `location.hash = '/models/tiny-arith/versions/3'; await sleep(3000);` (or '/prompts/arith-qa',
    '/models/tiny-arith'),
    then --after TEXT; tags with tags-expand.js and tags-decision.js or tags-rollback.js; the alias dialog with
    close-dialog.js, alias-open.js, alias-type.js (alias-save.js saves it for real).
    rm-0 and rm-5 are two shots each pasted side by side or one above the other with Pillow.
    shoot.py fit IN.png OUT.png --crop X,Y,W,H   crops what was taken
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

MAX_BYTES = 240_000  # each picture under 250 KB, so the repository stays small


def start_chromium(port: int, width: int, height: int) -> subprocess.Popen:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")
    profile = tempfile.mkdtemp(prefix="shoot-chromium-")
    return subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def page_socket(port: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                pages = [p for p in json.load(r) if p["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("chromium did not open its DevTools port")


class Page:
    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def send(self, method: str, **params):
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", {}).get("description", str(result)))
        return result["result"].get("value")

    async def wait_for_text(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.evaluate(f"document.body && document.body.innerText.includes({json.dumps(text)})"):
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"{text!r} did not appear on the page within {timeout_s:.0f} s")


# Helpers the --js scripts use: find by visible text, click, type into a field the way a keyboard does.
HELPERS = """
window.byText = (sel, text) => [...document.querySelectorAll(sel)].find(e => e.innerText && e.innerText.trim() === text)
  || [...document.querySelectorAll(sel)].find(e => e.innerText && e.innerText.includes(text));
window.sleep = ms => new Promise(r => setTimeout(r, ms));
window.typeInto = (el, value) => {
  const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
  el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true}));
};
"""


def shrink(png: bytes, crop: tuple[int, int, int, int] | None) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if crop:
        x, y, w, h = crop
        image = image.crop((x, y, x + w, y + h))
    if image.width > 1440:
        image = image.resize((1440, round(image.height * 1440 / image.width)), Image.LANCZOS)
    for colours in (None, 256, 128, 64):
        out = io.BytesIO()
        (image if colours is None else image.quantize(colours)).save(out, "PNG", optimize=True)
        if out.tell() <= MAX_BYTES:
            break
    return out.getvalue()


async def run(args) -> None:
    import websockets

    with socket.socket() as probe:  # a free loopback port for DevTools
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    browser = start_chromium(port, args.width, args.height)
    try:
        async with websockets.connect(page_socket(port), max_size=64 * 2**20) as ws:
            page = Page(ws)
            await page.send("Page.enable")
            await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=args.width,
                height=args.height,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.send("Page.navigate", url=args.url)
            if args.wait:
                await page.wait_for_text(args.wait, args.timeout)
            await page.evaluate(HELPERS)
            for script in args.js or []:
                await page.evaluate("(async () => {" + Path(script).read_text() + "})()")
            if args.after:
                await page.wait_for_text(args.after, args.timeout)
            await asyncio.sleep(args.settle)
            if args.command == "eval":
                print(await page.evaluate(args.out))
                return
            shot = await page.send("Page.captureScreenshot", format="png")
            crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else None
            data = shrink(base64.b64decode(shot["data"]), crop)
            Path(args.out).write_bytes(data)
            print(f"{args.out}: {len(data) // 1000} KB")
    finally:
        browser.terminate()
        browser.wait(10)


def fit(args) -> None:
    crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else None
    data = shrink(Path(args.url).read_bytes(), crop)
    Path(args.out).write_bytes(data)
    print(f"{args.out}: {len(data) // 1000} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["shot", "eval", "fit"])
    parser.add_argument("url", help="page to load (shot, eval), or the PNG to crop (fit)")
    parser.add_argument("out", help="PNG to write (shot), or a JavaScript expression to print (eval)")
    parser.add_argument("--wait", help="text to wait for before anything else")
    parser.add_argument(
        "--js",
        action="append",
        help="file of JavaScript to run in the page (async function body); repeatable, run in order",
    )
    parser.add_argument("--after", help="text to wait for after the JavaScript ran")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--crop", help="X,Y,W,H of the viewport to keep")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds to let the page finish drawing")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    if args.command == "fit":
        fit(args)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
