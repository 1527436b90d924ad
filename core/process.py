"""Is a process still the one we started? Pids are reused, so a pid is paired with its start time.

The home's Prefect server (llmops/server.py) and the reaping of runs a killed process left RUNNING
(registry/tracking.py) both ask this.
"""

from __future__ import annotations


def process_started(pid: int) -> float | None:
    """A process's start time, which tells it apart from a later process given the same pid."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_alive(pid: int, started: float | None) -> bool:
    """True while process `pid` runs and is the one that started at `started` (when given)."""
    now = process_started(pid)
    return now is not None and (started is None or abs(now - started) < 1.0)
