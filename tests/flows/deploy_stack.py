"""A real Prefect server, an `llmops worker` on a process pool, and the REST API the UI uses: for the
tests that start stages from their deployments' forms (test_deployments.py, test_release_desk.py).

MLflow is SQLite under a temporary LLMOPS_HOME, created once before the worker starts. The worker's
default config ($LLMOPS_CONFIG) is the bundled one at test size: the forms open with it, and a
scheduled run, started with no parameters, runs it. Runs are started the way the UI starts them
(`POST /deployments/{id}/create_flow_run`) with the form's values.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.servers import VENV_BIN, mlflow_env, prefect_server, started

ROOT = Path(__file__).resolve().parents[2]
POOL = "llmops-test"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "PAUSED"}


class Api:
    def __init__(self, base: str):
        self.base = base

    def call(self, method: str, path: str, body: dict | None = None, attempts: int = 5):
        """One request; a 503 (the server's database busy, as on a loaded machine) is retried, as
        Prefect's own client does."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    text = response.read()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                if e.code != 503 or attempt == attempts - 1:
                    raise
                time.sleep(2 * (attempt + 1))

    def get(self, path: str):
        return self.call("GET", path)

    def post(self, path: str, body: dict):
        return self.call("POST", path, body)

    def deployment(self, full_name: str) -> dict:
        return self.get(f"/deployments/name/{full_name}")

    def logs(self, run_id: str) -> str:
        logs = self.post(
            "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
        )
        return "\n".join(entry["message"] for entry in logs)[-6000:]


def worker_online(api: Api, pool: str) -> bool:
    try:
        return any(w["status"] == "ONLINE" for w in api.post(f"/work_pools/{pool}/workers/filter", {}))
    except (urllib.error.URLError, OSError):  # the pool is not there yet
        return False


class Stack:
    def __init__(self, api: Api, worker, tracking_uri: str, home: Path, default_config: Path, env: dict[str, str]):
        self.api, self.worker, self.tracking_uri = api, worker, tracking_uri
        self.home, self.default_config, self.env = home, default_config, env

    def mlflow(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def wait(self, run: dict, timeout_s: float) -> dict:
        """The run once it reached a final state (or paused), within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.api.get(f"/flow_runs/{run['id']}")
            if run["state_type"] in FINAL_STATES:
                return run
            if not self.worker.alive():
                pytest.fail(f"the worker exited while {run['name']} ran:\n{self.worker.log_tail()}")
            time.sleep(2)
        pytest.fail(
            f"flow run {run['name']} still {run['state_name']} after {timeout_s:.0f} s\n"
            f"{self.api.logs(run['id'])}\nworker:\n{self.worker.log_tail()}"
        )

    def completes(self, run: dict, timeout_s: float = 600) -> dict:
        run = self.wait(run, timeout_s)
        assert run["state_type"] == "COMPLETED", (
            f"{run['name']}: {run['state_name']} {run['state'].get('message')}\n{self.api.logs(run['id'])}\n"
            f"worker:\n{self.worker.log_tail()}"
        )
        return run

    def resumed(self, run: dict, timeout_s: float = 120) -> dict:
        """The run once it has left PAUSED (an answered form resumes it a moment later), then as `completes`."""
        deadline = time.monotonic() + timeout_s
        while self.api.get(f"/flow_runs/{run['id']}")["state_type"] == "PAUSED":
            if time.monotonic() > deadline:
                pytest.fail(f"flow run {run['name']} still paused {timeout_s:.0f} s after its form was answered")
            time.sleep(1)
        return self.completes(run)

    def run_form(self, full_name: str, form: dict, timeout_s: float = 600) -> dict:
        """What the UI does on "Run" with a filled form."""
        deployment = self.api.deployment(full_name)
        run = self.api.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": form})
        return self.completes(run, timeout_s)

    def config_file(self, edits: list[str], name: str) -> str:
        """A run config (the worker's, with `edits`) written where a form's config_file can name it."""
        from configs.load import apply_override

        config = yaml.safe_load(Path(self.default_config).read_text())
        for assignment in edits:
            apply_override(config, assignment)
        path = Path(self.default_config).with_name(f"{name}.yaml")
        path.write_text(yaml.safe_dump(config))
        return str(path)


def form(deployment: dict, config_edits: list[str] = (), config_file: str = "", **values) -> dict:
    """The form as the UI first shows it (every field at its default), with a person's edits: each
    config edit goes to the form's own section (or its whole `config`); `config_file` names the file
    the sections not in the form come from."""
    from configs.load import apply_override

    properties = deployment["parameter_openapi_schema"]["properties"]
    filled = {name: copy.deepcopy(prop["default"]) for name, prop in properties.items()}
    for assignment in config_edits:
        section = assignment.split("=", 1)[0].split(".", 1)[0]
        if "config" in filled:
            apply_override(filled["config"], assignment)
        elif isinstance(filled.get(section), dict) and properties[section].get("$ref"):
            apply_override(filled, assignment)
    if config_file:
        filled["config_file"] = config_file
    return filled | values


def small_home(root: Path, tiny_overrides: list[str]) -> tuple[Path, str]:
    """`root/home` with its MLflow schema created, and `root/small.yaml` (the default config at test
    size); returns the home and its tracking URI."""
    from configs.load import DEFAULT_CONFIG, apply_override

    home = root / "home"
    home.mkdir()
    small = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for assignment in tiny_overrides:
        apply_override(small, assignment)
    (root / "small.yaml").write_text(yaml.safe_dump(small))
    tracking = f"sqlite:///{home / 'mlflow.db'}"
    # One process creates the schema; the flow runs then open it side by side.
    subprocess.run(
        [str(VENV_BIN / "mlflow"), "db", "upgrade", tracking],
        env=mlflow_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home, tracking


@contextlib.contextmanager
def deploy_stack(root: Path, tiny_overrides: list[str], ui: bool = False) -> Iterator[Stack]:
    """A Prefect server (with its UI when `ui`) and an `llmops worker` polling POOL, on a home in `root`."""
    home, tracking = small_home(root, tiny_overrides)
    with prefect_server(root / "server", ui=ui) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_"))}
        env = server.client_env(env) | {
            "PYTHONPATH": str(ROOT),
            "LLMOPS_HOME": str(home),
            "MLFLOW_TRACKING_URI": tracking,
            "PREFECT_HOME": str(root / "worker-prefect"),
            "LLMOPS_CONFIG": str(root / "small.yaml"),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }  # picks a run up within seconds, not the default 10
        api = Api(server.api_url)
        cmd = [sys.executable, "-m", "llmops.cli", "worker", "--pool", POOL]
        with started(
            cmd,
            name="llmops worker",
            log=root / "worker.log",
            env=env,
            ready=lambda: worker_online(api, POOL),
            timeout_s=300,
            stop_signal=signal.SIGINT,
        ) as worker:
            yield Stack(api, worker, tracking, home, root / "small.yaml", env)
