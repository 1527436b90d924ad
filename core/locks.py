"""File locks, so that several processes can share one LLMOPS_HOME.

Two `llmops nightly` on one home build the same base model, write the same demo data and move the
same registry aliases. Each such target takes an exclusive lock on a file beside it: the second
process waits, then finds the first one's finished result. The kernel releases a lock when its
holder dies, even by SIGKILL, so a crash never leaves a stale lock to clean up by hand.

The locks are `flock` locks: advisory, and local to one machine. They serialise processes (and
threads, each opening its own descriptor) on this machine only, not processes on other machines
that share a team's MLflow server. Ground floor (`core/`): every layer may take a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from pathlib import Path
from typing import Iterator

log = logging.getLogger("llmops.locks")


def lock_path(target: str | Path) -> Path:
    """The lock file of a target: beside it, never inside, so the target can be replaced whole."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def file_lock(target: str | Path) -> Iterator[Path]:
    """Holds an exclusive lock on `<target>.lock` for the `with` block; waits while another holds it.

    The lock file stays on disk afterwards: deleting it would let a waiter lock a file that a
    newcomer no longer sees. Not re-entrant: a block must not take the same lock again.
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process that holds %s", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def home_lock(name: str) -> contextlib.AbstractContextManager[Path]:
    """A named lock of the current LLMOPS_HOME (e.g. one per registered model), under `locks/`."""
    from core.paths import llmops_home

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return file_lock(llmops_home() / "locks" / safe)
