"""The home's own Prefect server: it stays while something uses it, stops by itself once idle, and
`make where` (the end of `make run`) says where the tools and its UI are.

A real server under its real watcher (llmops/server_watch.py), on a home of its own, with an idle
time of a few seconds. Nothing here measures time: the test waits (bounded) for the server to stop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IDLE_MINUTES = "0.05"  # 3 s

CLIENT = """
import sys
from core.paths import setup_environment
setup_environment()
from llmops.server import ensure_server
print(ensure_server(), flush=True)
sys.stdin.read()  # a command still running: registered as the server's user until it exits
"""


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_"))}
    return env | {"LLMOPS_HOME": str(home), "LLMOPS_PREFECT_IDLE_MINUTES": IDLE_MINUTES, "PYTHONPATH": str(ROOT)}


def post(api_url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        api_url + path, json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def make_where(home: Path) -> list[str]:
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "where", f"BIN={BIN}", f"LLMOPS_HOME={home}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_make_where_says_where_llmops_and_prefect_are(tmp_path):
    first, second = make_where(tmp_path / "home")
    assert (
        first == f"llmops and prefect are in {BIN}/ (not on PATH): run {BIN}/llmops COMMAND, or first: . {BIN}/activate"
    )
    assert (BIN / "llmops").is_file() and (BIN / "prefect").is_file()
    assert second.startswith(f"no Prefect server is running for LLMOPS_HOME={tmp_path / 'home'}")


@pytest.mark.slow
def test_the_home_server_stays_while_used_and_stops_by_itself_when_idle(tmp_path):
    from core.process import is_alive
    from llmops.server import read_state, stop_server
    from llmops.server_watch import busy_reasons

    home = tmp_path / "home"
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT],
        cwd=ROOT,
        env=home_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api_url = client.stdout.readline().strip()
        assert api_url.startswith("http://127.0.0.1:"), client.stderr.read() if client.poll() is not None else ""
        state = read_state(home)
        assert state["api_url"] == api_url and state["idle_minutes"] == float(IDLE_MINUTES)
        assert busy_reasons(home, api_url) == [f"llmops process {client.pid}"]
        # A flow run waiting (paused for a release manager, say) keeps it too, without any command.
        flow = post(api_url, "/flows/", {"name": "held"})
        run = post(api_url, "/flow_runs/", {"flow_id": flow["id"], "name": "waiting-run", "state": {"type": "PAUSED"}})
        assert f"flow run {run['name']} (paused)" in busy_reasons(home, api_url)
        post(api_url, f"/flow_runs/{run['id']}/set_state", {"state": {"type": "COMPLETED"}, "force": True})
        lines = make_where(home)
        assert lines[1] == (
            f"Prefect UI of this home: {state['ui_url']} (it stops by itself after {float(IDLE_MINUTES):g} min "
            "unused (LLMOPS_PREFECT_IDLE_MINUTES), or with `llmops stop`); forms for every stage: `llmops worker` "
            "(docs/deployments.md)"
        )
        assert is_alive(state["pid"], state["started"])  # a command still holds it
        client.stdin.close()  # the command ends
        assert client.wait(timeout=60) == 0
        deadline = time.monotonic() + 180
        while is_alive(state["pid"], state["started"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        log = (home / "prefect" / "server.log").read_text()
        assert not is_alive(state["pid"], state["started"]), f"still running:\n{log[-2000:]}"
        assert f"idle for {float(IDLE_MINUTES):g} min (LLMOPS_PREFECT_IDLE_MINUTES): stopping the server" in log
        assert read_state(home) is None  # forgotten: the next command starts it again
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{api_url}/health", timeout=5)
    finally:
        if client.poll() is None:
            client.kill()
        stop_server(home, force=True)
