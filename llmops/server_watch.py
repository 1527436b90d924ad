"""The home's Prefect server, run under a small watcher that stops it after an idle time.

An idle `prefect server start` costs about 270 MB and 5 % of a core, and every home kept one
running until `llmops stop`. llmops/server.py now starts this module instead, in a session of its
own; it starts the server as its child (same process group, so `llmops stop` ends both) and checks
every few seconds whether anything still uses it:

- an llmops command registered as its user (`prefect/clients/`, see llmops/server.py);
- a flow run that is pending, running, paused (waiting for a release manager) or cancelling;
- a worker online on a work pool, or a deployment whose runner polls (`llmops worker`, `llmops serve`).

After `LLMOPS_PREFECT_IDLE_MINUTES` (default 60; 0 = never) with none of these, it stops the server,
under the same lock that starting and reusing take, and forgets its record; the next llmops command
starts it again on the same database, so the UI's history stays. A person only browsing the UI is
not seen, so it may stop under them; the next command brings it back. Standard library only: the
watcher costs a few MB, not a second Prefect.

    python -m llmops.server_watch HOME PORT IDLE_MINUTES      (started by llmops/server.py)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

IDLE_VAR = "LLMOPS_PREFECT_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 60.0
OPEN_STATES = ["PENDING", "RUNNING", "PAUSED", "CANCELLING"]


class Stop(Exception):
    """SIGTERM or SIGINT reached the watcher: stop the server, then exit."""


def idle_minutes() -> float:
    from core.errors import UserError

    raw = os.environ.get(IDLE_VAR, str(DEFAULT_IDLE_MINUTES))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UserError(f"{IDLE_VAR}={raw}", "is not a number of minutes", f"e.g. {IDLE_VAR}=120, or 0 to never stop")
    return value


def _post(api_url: str, path: str, body: dict) -> list:
    request = urllib.request.Request(
        api_url + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(request, timeout=10) as answer:
        return json.loads(answer.read() or b"[]")


def busy_reasons(home: Path, api_url: str) -> list[str]:
    """What uses the server now, in words; empty when it is idle. A server that does not answer is
    counted as busy: better a server left running than one stopped under a slow request."""
    from llmops.server import live_clients

    reasons = [f"llmops process {pid}" for pid in live_clients(home)]
    try:
        runs = _post(
            api_url, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": OPEN_STATES}}}, "limit": 5}
        )
        reasons += [f"flow run {r['name']} ({r['state_type'].lower()})" for r in runs]
        for pool in _post(api_url, "/work_pools/filter", {"limit": 50}):
            workers = _post(api_url, f"/work_pools/{pool['name']}/workers/filter", {"limit": 50})
            reasons += [f"worker {w['name']}" for w in workers if w.get("status") == "ONLINE"]
        deployments = _post(api_url, "/deployments/filter", {"limit": 200})
        reasons += [f"deployment {d['name']} polled" for d in deployments if d.get("status") == "READY"]
    except OSError as err:
        reasons.append(f"the server did not answer ({err})")
    return reasons


def _stop_child(child: subprocess.Popen, grace_s: float = 12.0) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def _say(text: str) -> None:
    print(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} watcher: {text}", flush=True)


def _stop_when_idle(home: Path, child: subprocess.Popen, idle_s: float) -> bool:
    """Under the server lock: stop the server and forget it if still idle. True when it stopped."""
    from core.locks import file_lock
    from llmops.server import read_state, state_dir, state_file

    with file_lock(state_dir(home) / "server"):
        state = read_state(home) or {}
        if state.get("pid") != os.getpid():
            return False  # recorded server is another one: not ours to forget
        still = busy_reasons(home, state["api_url"])
        if still:
            return False
        _say(f"idle for {idle_s / 60:g} min ({IDLE_VAR}): stopping the server")
        _stop_child(child)
        state_file(home).unlink(missing_ok=True)
    return True


def watch(home: Path, port: int, minutes: float) -> int:
    def stop(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # The UI asks the API at the host and port of these settings, not of the flags: without them the
    # UI of a server on any port but 4200 shows "Can't connect to Server API at http://127.0.0.1:4200/api".
    env = os.environ | {"PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
    child = subprocess.Popen([*cmd, "--analytics-off"], stdin=subprocess.DEVNULL, env=env)
    api_url, idle_s = f"http://127.0.0.1:{port}/api", minutes * 60
    poll_s = min(30.0, max(1.0, idle_s / 10))
    last_busy, was_busy = time.monotonic(), True
    try:
        while child.poll() is None:
            time.sleep(poll_s)
            if idle_s <= 0 or child.poll() is not None:
                continue
            reasons = busy_reasons(home, api_url)
            if reasons:
                last_busy = time.monotonic()
                if not was_busy:
                    _say("in use: " + ", ".join(reasons[:3]))
            elif was_busy:
                _say(f"idle: stops in {minutes:g} min unless used")
            was_busy = bool(reasons)
            if not reasons and time.monotonic() - last_busy >= idle_s and _stop_when_idle(home, child, idle_s):
                return 0
    except Stop:
        _stop_child(child)
        return 0
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
