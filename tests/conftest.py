"""Test session set-up: one temporary LLMOPS_HOME, one Prefect test harness, one MLflow store.

The environment is set before prefect or mlflow is imported anywhere, so tests never touch a
developer's ./.llmops. MLflow's SQLite database is created once, here, by this one process.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="llmops-test-"))
os.environ["LLMOPS_HOME"] = str(_HOME)
for var in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "LLMOPS_HOME_PREFECT_URL"):
    os.environ.pop(var, None)
# CLI subprocesses keep Prefect's per-process temporary server: a per-home server (llmops/server.py)
# would outlive them. tests/flows/test_processes.py covers the per-home server on homes of its own.
os.environ["LLMOPS_PREFECT_SERVER"] = "ephemeral"

from core.paths import setup_environment  # noqa: E402
from llmops.home import quiet_libraries  # noqa: E402

setup_environment()
quiet_libraries()
# Prefect configures its log handlers on import, bound to the sys.stderr of that moment. Importing it
# here binds them to the session's stream; first imported inside a test using capsys, they would
# keep that test's stream and write to it, closed, in every later test.
import prefect  # noqa: E402,F401

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def llmops_home() -> Path:
    return _HOME


@pytest.fixture(scope="session", autouse=True)
def no_home_server_outlives_the_session(tmp_path_factory):
    """A test that runs the CLI with an environment of its own (without LLMOPS_PREFECT_SERVER) starts
    a home's Prefect server, which outlives it by design: the session ends every one it left."""
    yield
    from llmops.server import stop_server

    for record in [
        *Path(tmp_path_factory.getbasetemp()).rglob("prefect/server.json"),
        _HOME / "prefect" / "server.json",
    ]:
        if record.exists():
            stop_server(record.parent.parent, force=True)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """A run small enough for tests: the same code paths, minutes become seconds."""
    return [
        "data.demo_train_rows=160",
        "data.demo_pref_rows=48",
        "data.demo_eval_rows=24",
        "model.tiny.pretrain_steps=60",
        "model.tiny.hidden_size=64",
        "model.tiny.num_layers=2",
        "train.sft.max_steps=40",
        "train.sft.batch_size=8",
        "train.preference.max_steps=6",
        "train.preference.batch_size=4",
        "eval.max_new_tokens=16",
        # Latency and cost are timings: on a shared 2-core machine they swing by more than the 2x the
        # gate allows, and would decide a test by load. Their gate checks have unit tests (test_gate.py).
        "gate.max_latency_increase=null",
        "gate.max_cost_increase=null",
    ]
