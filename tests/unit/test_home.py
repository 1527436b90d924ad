"""A bad LLMOPS_HOME fails at once with one line that names it; file locks hold across processes.

Each bad-home case runs the real `llmops nightly` in a subprocess: before, a read-only home waited
236 s for Prefect's temporary server, and the other cases ended in tracebacks. The subprocess
timeout only keeps a regression from hanging the suite; nothing here measures time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL")
    } | (env or {})
    env["LLMOPS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


@contextlib.contextmanager
def unwritable(folder: Path):
    """The folder refuses new entries: no write bit, or for root (who ignores it) the immutable flag."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root where `chattr +i` is unavailable: no way to make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def assert_one_line_about_home(out: subprocess.CompletedProcess, *fragments: str) -> str:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: LLMOPS_HOME=")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_read_only_home_fails_at_once(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with unwritable(home):
        out = run_cli(home, "nightly")
    line = assert_one_line_about_home(out, str(home), "is not writable")
    assert "chmod" in line  # says what to do
    assert not (home / "mlflow.db").exists()


def test_home_that_is_a_file(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    assert_one_line_about_home(run_cli(home, "nightly"), f"{home} is a file, not a folder")


def test_home_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    home = blocker / "sub" / "home"
    assert_one_line_about_home(run_cli(home, "nightly"), f"cannot create {home}", f"{blocker} is a file")


def test_home_that_cannot_be_created(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    home = parent / "sub" / "home"
    with unwritable(parent):
        out = run_cli(home, "nightly")
    assert_one_line_about_home(out, f"cannot create {home}")
    assert not home.exists()


def test_unwritable_state_inside_a_good_home(tmp_path):
    """The home is fine but Prefect's folder inside is not: named as precisely."""
    home = tmp_path / "home"
    (home / "prefect").mkdir(parents=True)
    with unwritable(home / "prefect"):
        out = run_cli(home, "nightly")
    assert_one_line_about_home(out, f"{home / 'prefect'} is not writable")


def test_unknown_server_mode_is_a_user_error(tmp_path):
    out = run_cli(tmp_path / "home", "curate", env={"LLMOPS_PREFECT_SERVER": "sometimes"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "LLMOPS_PREFECT_SERVER=sometimes" in out.stderr and "ephemeral" in out.stderr


# ------------------------------------------------------------------------------------ locks

HOLDER = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from core.locks import file_lock
with file_lock(sys.argv[1]):
    print("locked", flush=True)
    if sys.argv[2] == "hold":
        time.sleep(600)
"""


def test_second_process_waits_for_the_lock(tmp_path):
    from core.locks import file_lock

    target = tmp_path / "model"
    with file_lock(target) as path:
        assert path == tmp_path / "model.lock"
        waiter = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(target), "release"],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert "waiting for another process" in waiter.stderr.readline()  # it found the lock taken
    # only now, with the lock released, can it take it
    assert waiter.stdout.read().strip() == "locked"
    assert waiter.wait(timeout=60) == 0


def test_lock_of_a_killed_process_is_free(tmp_path):
    import fcntl

    target = tmp_path / "model"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target), "hold"],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert holder.stdout.readline().strip() == "locked"
    with open(tmp_path / "model.lock") as f:
        with pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.kill()
        holder.wait(timeout=60)
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel with the dead process


BUILD = """
import sys
from pathlib import Path
from configs.schema import TinyModelConfig
from tasks.model.tiny import build_tiny_model
cfg = TinyModelConfig(vocab_size=300, hidden_size=16, num_layers=1, num_heads=2, pretrain_steps=2)
print(build_tiny_model(cfg, Path(sys.argv[1])))
"""


def test_two_processes_build_the_base_model_once(tmp_path):
    """Both used to build it, and the second died moving its folder onto the first one's."""
    models = tmp_path / "models"
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD, str(models)],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [b.communicate(timeout=300) for b in builders]
    assert [b.returncode for b in builders] == [0, 0], [err[-2000:] for _, err in outs]
    folders = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(folders) == 1
    built = Path(folders.pop())
    assert (built / "BUILD_COMPLETE.json").exists()
    assert sorted(p.name for p in models.iterdir()) == sorted([built.name, built.name + ".lock"])


# ------------------------------------------------------------------------ the home's server


def test_a_set_prefect_api_url_is_used_and_nothing_started(tmp_path):
    code = (
        "from core.paths import setup_environment\nsetup_environment()\n"
        "from llmops.server import ensure_server\nprint(ensure_server())"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI", "LLMOPS_PREFECT_SERVER")
    }
    env |= {"LLMOPS_HOME": str(tmp_path / "home"), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "http://127.0.0.1:9/api"
    assert not (tmp_path / "home" / "prefect" / "server.json").exists()


def test_stop_forgets_a_server_that_already_ended(tmp_path):
    """After a reboot the record names a pid that is gone (or now belongs to another program)."""
    import json

    home = tmp_path / "home"
    (home / "prefect").mkdir(parents=True)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    record = {
        "pid": ended.pid,
        "started": 1.0,
        "port": 9,
        "api_url": "http://127.0.0.1:9/api",
        "ui_url": "http://127.0.0.1:9",
    }
    (home / "prefect" / "server.json").write_text(json.dumps(record))
    out = run_cli(home, "stop")
    assert out.returncode == 0 and f"(pid {ended.pid}) had already ended" in out.stdout
    assert not (home / "prefect" / "server.json").exists()
    assert "no Prefect server is recorded" in run_cli(home, "stop").stdout


# ---------------------------------------------------------------------------- crash hygiene

OPEN_RUN = """
import time
from registry.tracking import stage_run
with stage_run("reaper-test", "train") as run_id:
    print(run_id, flush=True)
    time.sleep(600)
"""


def test_runs_left_running_by_a_killed_process_are_marked_killed():
    import socket

    from core.process import is_alive
    from registry.tracking import client, ensure_experiment, init_store, reap_dead_runs, stage_run

    init_store()
    child = subprocess.Popen([sys.executable, "-c", OPEN_RUN], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    dead_run = child.stdout.readline().strip()
    child.kill()
    child.wait(timeout=60)
    c = client()
    experiment = ensure_experiment("reaper-test")
    # this process's pid, but another start time: the pid was reused after its first owner died
    reused = c.create_run(
        experiment,
        tags={"llmops.host": socket.gethostname(), "llmops.pid": str(os.getpid()), "llmops.pid_started": "1.0"},
    ).info.run_id
    untagged = c.create_run(experiment).info.run_id  # written by an older llmops: nothing to judge it by
    with stage_run("reaper-test", "evaluate") as live_run:
        reaped = reap_dead_runs(is_alive)
        assert dead_run in reaped and reused in reaped
        assert live_run not in reaped and untagged not in reaped
        assert c.get_run(live_run).info.status == "RUNNING"
    run = c.get_run(dead_run)
    assert run.info.status == "KILLED" and run.data.tags["llmops.pid"] == str(child.pid)
    assert run.data.tags["llmops.host"] == socket.gethostname()
    assert (
        run.data.tags["llmops.ended_by"]
        == f"process {child.pid} on {socket.gethostname()} ended without closing the run"
    )
    assert c.get_run(untagged).info.status == "RUNNING"
    c.set_terminated(untagged)
