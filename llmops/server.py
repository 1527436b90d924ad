"""One local Prefect server per LLMOPS_HOME, shared by every llmops process on that home.

Prefect's default without PREFECT_API_URL is a temporary server inside each process. That failed
in three ways: on a busy machine it started too slowly or was gone before the last logs were sent
("All connection attempts failed"); two processes on one home each ran one on the same SQLite
file; and a process killed with SIGKILL left its server listening, with nobody to stop it.

So the first llmops command that runs a flow starts `prefect server start` on 127.0.0.1, on a
free port, in a session of its own so that it outlives the command; it records pid and address in
$LLMOPS_HOME/prefect/server.json and waits for the health check. Later commands on the same home
reuse it (in well under a second), and its UI shows every run: `llmops worker` deploys the forms
to it too. It stops by itself once nothing has used it for LLMOPS_PREFECT_IDLE_MINUTES (default
60; llmops/server_watch.py), or with `llmops stop`. Starting, reusing and the idle stop happen under
one file lock, so concurrent commands share a single server. A set PREFECT_API_URL wins: then
llmops uses that server and starts nothing.

LLMOPS_PREFECT_SERVER=ephemeral keeps Prefect's per-process temporary server instead; the test
suite sets it, so that CLI subprocesses leave no server behind and pay no server start each.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.errors import UserError
from core.locks import file_lock
from core.paths import llmops_home
from core.process import is_alive, process_started

MODE_VAR = "LLMOPS_PREFECT_SERVER"  # "home" (default) or "ephemeral"
START_TIMEOUT_VAR = "LLMOPS_PREFECT_START_TIMEOUT"
# Set to the server's API URL when it is this home's own server: the promote flow tells it apart
# from a team's server, where a person is expected to answer approval requests.
HOME_SERVER_VAR = "LLMOPS_HOME_PREFECT_URL"
# A fresh home runs its database migrations first: 11 s on an idle 2-core machine, and several
# times that with the cores busy. Generous, because giving up costs the whole command.
DEFAULT_START_TIMEOUT_S = 300


def state_dir(home: Path | None = None) -> Path:
    return (home or llmops_home()) / "prefect"


def state_file(home: Path | None = None) -> Path:
    return state_dir(home) / "server.json"


def log_file(home: Path | None = None) -> Path:
    return state_dir(home) / "server.log"


def read_state(home: Path | None = None) -> dict | None:
    try:
        return json.loads(state_file(home).read_text())
    except (OSError, ValueError):
        return None


def healthy(api_url: str, timeout_s: float = 3.0) -> bool:
    import urllib.error
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy
    try:
        with direct.open(f"{api_url}/health", timeout=timeout_s) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _subject(home: Path) -> str:
    return f"the Prefect server of LLMOPS_HOME={home}"


def _log_tail(home: Path, lines: int = 3) -> str:
    try:
        text = [line.strip() for line in log_file(home).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _start_timeout() -> float:
    raw = os.environ.get(START_TIMEOUT_VAR, str(DEFAULT_START_TIMEOUT_S))
    try:
        return float(raw)
    except ValueError:
        raise UserError(
            f"{START_TIMEOUT_VAR}={raw}", "is not a number of seconds", f"e.g. {START_TIMEOUT_VAR}=600"
        ) from None


def _wait_healthy(home: Path, url: str, pid: int, started: float | None, timeout_s: float) -> bool:
    """Polls the health check until it answers, the process dies, or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthy(url):
            return True
        if not is_alive(pid, started):
            return False
        time.sleep(0.25)
    return False


def _spawn(home: Path, port: int, idle_minutes: float) -> subprocess.Popen:
    """The server under its idle watcher (llmops/server_watch.py), which is the recorded pid."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", HOME_SERVER_VAR)}
    env |= {"PREFECT_HOME": str(state_dir(home)), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    with open(log_file(home), "ab") as log:
        log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} starting on port {port}\n".encode())
        log.flush()
        # A session of its own: Ctrl-C in the terminal and the death of this command leave it
        # running, and `llmops stop` ends its whole process group (the watcher and the server).
        return subprocess.Popen(
            [sys.executable, "-m", "llmops.server_watch", str(home), str(port), str(idle_minutes)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(home),
            start_new_session=True,
        )


def start_server(home: Path) -> dict:
    """Starts the home's server and waits until it answers; the caller holds the server lock."""
    from llmops.server_watch import idle_minutes

    timeout_s, idle = _start_timeout(), idle_minutes()
    state_dir(home).mkdir(parents=True, exist_ok=True)
    print(
        f"starting the Prefect server of LLMOPS_HOME={home} (the first start on a new home takes a while) ...",
        file=sys.stderr,
        flush=True,
    )
    for _attempt in range(3):  # another program may take the free port before the server binds it
        port = free_port()
        proc = _spawn(home, port, idle)
        started, url = process_started(proc.pid), f"http://127.0.0.1:{port}/api"
        state = {
            "pid": proc.pid,
            "started": started,
            "port": port,
            "api_url": url,
            "ui_url": f"http://127.0.0.1:{port}",
            "home": str(home),
            "python": sys.executable,
            "idle_minutes": idle,
        }
        if _wait_healthy(home, url, proc.pid, started, timeout_s):
            tmp = state_file(home).with_suffix(".json.tmp")
            tmp.write_text(json.dumps(state, indent=1))
            os.replace(tmp, state_file(home))
            return state
        if proc.poll() is None:  # alive but silent: the machine is too busy for the time allowed
            _terminate(proc.pid)
            raise UserError(
                _subject(home),
                f"did not answer its health check within {timeout_s:.0f} s",
                f"the machine may be overloaded: retry, raise {START_TIMEOUT_VAR} (seconds), or set "
                f"PREFECT_API_URL to a running server; its log: {log_file(home)}",
            )
        if "already in use" not in _log_tail(home):
            break
    raise UserError(
        _subject(home),
        f"exited while starting (code {proc.returncode}): {_log_tail(home) or 'no output'}",
        f"see {log_file(home)}",
    )


def _configured_url() -> str | None:
    """The Prefect API this process is already set to use, if any."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if "prefect" in sys.modules:  # imported already (a test calling the CLI in-process): its settings are fixed
        from prefect.settings import get_current_settings

        return str(get_current_settings().api.url or "") or None
    return None


def ensure_server(home: Path | None = None, start: bool = True) -> str | None:
    """Points this process at its home's Prefect server, starting it if none answers (unless not `start`).

    Returns the API URL in use, or None where Prefect's per-process temporary server stays the
    choice (LLMOPS_PREFECT_SERVER=ephemeral, prefect imported before any URL was set, when a new
    one can no longer take effect, or no server running and `start` false). Must run before prefect
    is imported.
    """
    configured = _configured_url()
    if configured:
        return configured
    mode = os.environ.get(MODE_VAR, "home")
    if mode not in ("home", "ephemeral"):
        raise UserError(f"{MODE_VAR}={mode}", "is not a known mode", f"use {MODE_VAR}=home (the default) or ephemeral")
    if mode == "ephemeral" or "prefect" in sys.modules:
        return None
    home = home or llmops_home()
    with file_lock(state_dir(home) / "server"):
        state = read_state(home)
        if state and is_alive(state["pid"], state.get("started")):
            # Running: under load it may answer slowly, so wait for it rather than start a second one.
            if not _wait_healthy(home, state["api_url"], state["pid"], state.get("started"), _start_timeout()):
                raise UserError(
                    _subject(home),
                    f"(pid {state['pid']}) does not answer at {state['api_url']}",
                    f"end it with `llmops stop` and run the command again; its log: {log_file(home)}",
                )
        elif not start:
            return None
        else:
            state = start_server(home)
            print(
                f"Prefect server of this home: {state['ui_url']} (UI); {lifetime(state)}", file=sys.stderr, flush=True
            )
        _register_client(home)  # under the lock: `llmops stop` sees every user of the server it may end
    os.environ["PREFECT_API_URL"] = os.environ[HOME_SERVER_VAR] = state["api_url"]
    return state["api_url"]


def lifetime(state: dict) -> str:
    """How long the server keeps running, in the words a person needs to keep or end it."""
    from llmops.server_watch import IDLE_VAR

    minutes = state.get("idle_minutes")
    if not minutes:
        return "it keeps running until `llmops stop`"
    return f"it stops by itself after {minutes:g} min unused ({IDLE_VAR}), or with `llmops stop`"


def _register_client(home: Path) -> None:
    """Records this process as a user of the server, so `llmops stop` can refuse to cut it off."""
    import atexit

    clients = state_dir(home) / "clients"
    clients.mkdir(exist_ok=True)
    mine = clients / str(os.getpid())
    mine.write_text(json.dumps({"started": process_started(os.getpid()), "argv": sys.argv[1:]}))
    atexit.register(lambda: mine.unlink(missing_ok=True))


def live_clients(home: Path | None = None) -> list[int]:
    """Pids of llmops processes using the home's server now (files of dead ones are removed)."""
    found = []
    for entry in sorted((state_dir(home) / "clients").glob("*")):
        try:
            pid, started = int(entry.name), json.loads(entry.read_text()).get("started")
        except (ValueError, OSError):
            continue
        if pid != os.getpid() and is_alive(pid, started):
            found.append(pid)
        elif pid != os.getpid():
            entry.unlink(missing_ok=True)
    return found


def _terminate(pid: int, wait_s: float = 15.0) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it is still there after `wait_s`."""
    for sig, wait in ((signal.SIGTERM, wait_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                    return
            except ChildProcessError:
                pass
            if process_started(pid) is None:
                return
            time.sleep(0.1)


def stop_server(home: Path | None = None, force: bool = False) -> str:
    """Ends the home's server; returns what happened, in a sentence."""
    home = home or llmops_home()
    with file_lock(state_dir(home) / "server"):
        state = read_state(home)
        if state is None:
            return f"no Prefect server is recorded for LLMOPS_HOME={home}"
        if not is_alive(state["pid"], state.get("started")):
            state_file(home).unlink(missing_ok=True)
            return f"the Prefect server of LLMOPS_HOME={home} (pid {state['pid']}) had already ended"
        users = live_clients(home)
        if users and not force:
            raise UserError(
                _subject(home),
                f"is in use by running llmops process(es) {', '.join(map(str, users))}",
                "wait for them to finish, or run `llmops stop --force` (their runs then fail)",
            )
        _terminate(state["pid"])
        state_file(home).unlink(missing_ok=True)
        return f"stopped the Prefect server of LLMOPS_HOME={home} (pid {state['pid']}, {state['ui_url']})"


def describe(home: Path | None = None) -> str:
    """Where this home's Prefect UI is, and how long it stays, for a person who just ran a command."""
    home = home or llmops_home()
    state = read_state(home)
    if state is None or not is_alive(state["pid"], state.get("started")):
        return (
            f"no Prefect server is running for LLMOPS_HOME={home}; the next llmops command that runs a flow "
            "starts it (its UI shows every run so far)"
        )
    return (
        f"Prefect UI of this home: {state['ui_url']} ({lifetime(state)}); "
        "forms for every stage: `llmops worker` (docs/deployments.md)"
    )


if __name__ == "__main__":  # `make where`, the end of `make run`
    print(describe())
