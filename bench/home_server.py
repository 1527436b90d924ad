"""What the home's Prefect server costs while idle, what its idle watcher adds, and that it stops.

    python bench/home_server.py --idle-minutes 2 --sample-s 60 --json

Starts the server of a fresh temporary home the way any llmops command does (a command that
exits at once), then measures, over `--sample-s` seconds of idleness, the CPU-seconds and the
resident memory of the server and of its watcher (llmops/server_watch.py), each from psutil; then
waits for the watcher to stop the server by itself and reports whether it did. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = (
    "from core.paths import setup_environment\nsetup_environment()\n"
    "from llmops.server import ensure_server\nensure_server()"
)


def main() -> None:
    import psutil

    from llmops.server import read_state, stop_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-minutes", type=float, default=2.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="print one JSON line (the default output)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-home-server-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_"))}
    env |= {"LLMOPS_HOME": str(home), "LLMOPS_PREFECT_IDLE_MINUTES": str(args.idle_minutes), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", START], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    state = read_state(home)
    watcher = psutil.Process(state["pid"])
    [server] = watcher.children()
    try:
        before = {p: p.cpu_times() for p in (watcher, server)}
        time.sleep(args.sample_s)
        cpu = {p: sum(p.cpu_times()[:2]) - sum(before[p][:2]) for p in (watcher, server)}
        rss = {p: p.memory_info().rss / 2**20 for p in (watcher, server)}
        deadline = time.monotonic() + args.idle_minutes * 60 + 120
        while watcher.is_running() and watcher.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(1)
        stopped = not server.is_running() and read_state(home) is None
    finally:
        stop_server(home, force=True)
    print(
        json.dumps(
            {
                "idle_minutes": args.idle_minutes,
                "sample_s": args.sample_s,
                "server_cpu_s": round(cpu[server], 3),
                "watcher_cpu_s": round(cpu[watcher], 3),
                "server_cpu_share": round(cpu[server] / args.sample_s, 4),
                "watcher_cpu_share": round(cpu[watcher] / args.sample_s, 4),
                "server_rss_mb": round(rss[server], 1),
                "watcher_rss_mb": round(rss[watcher], 1),
                "stopped_by_itself": stopped,
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
