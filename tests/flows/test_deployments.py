"""Every stage from its deployment: a process work pool, `llmops worker`, a real Prefect server.

One Prefect server (fresh PREFECT_HOME, SQLite) and one `llmops worker` process serve the whole
module; MLflow is SQLite under a temporary LLMOPS_HOME, created once before the worker starts.
Runs are started the way the UI starts them, over the server's REST API
(`POST /deployments/{id}/create_flow_run`) with the form's values: every field's default from the
deployment's parameter schema, edited where a person would edit it. The nightly is also started
the way its schedule starts it: the run the server's scheduler created for 02:00 UTC, with no
parameters, moved to now.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.servers import VENV_BIN, mlflow_env, prefect_server, started
from tests.unit.test_config_forms import description_problems

ROOT = Path(__file__).resolve().parents[2]
POOL = "llmops-test"
FORM_MODEL = "form-arith"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "PAUSED"}
PLAIN_TYPES = {"string", "boolean", "integer", "number"}
DEPLOYMENTS = {"nightly", "curate", "train", "evaluate", "promote", "prompt", "monitor", "drift"}
SCHEDULED = {"nightly": "0 2 * * *", "monitor": "0 6 * * *", "drift": "0 6 * * *"}


# -- what a form may hold ---------------------------------------------------------------------


def form_problems(schema: dict) -> list[str]:
    """Why a deployment's form would not start a run as it is, or would show a field a person
    cannot fill: a parameter without a default or a description, or one that is neither a plain
    value (text, number, flag, list of texts, empty-able text) nor the one RunConfig; and, inside
    RunConfig, every nested field without a short description (`description_problems`)."""
    problems = [f"{name}: required" for name in schema.get("required") or []]
    for name, prop in schema["properties"].items():
        if "default" not in prop:
            problems.append(f"{name}: no default")
        if not str(prop.get("description", "")).strip():
            problems.append(f"{name}: no description")
        kinds = [prop] if "anyOf" not in prop else prop["anyOf"]
        for kind in kinds:
            plain = kind.get("type") in PLAIN_TYPES | {"null"} or (
                kind.get("type") == "array" and kind.get("items", {}).get("type") in PLAIN_TYPES
            )
            if kind.get("$ref") == "#/definitions/RunConfig":
                problems += description_problems(kind, schema.get("definitions") or {}, where=name)
            elif not plain:
                problems.append(f"{name}: not a plain field ({json.dumps(kind)[:80]})")
    return problems


def test_form_problems_names_what_a_form_lacks() -> None:
    schema = {
        "properties": {
            "a": {"type": "string", "default": ""},
            "b": {"type": "object", "default": {}, "description": "a mapping"},
            "c": {"type": "string", "description": "fine", "default": "x"},
        },
        "required": ["a"],
    }
    assert form_problems(schema) == [
        "a: required",
        "a: no description",
        'b: not a plain field ({"type": "object", "default": {}, "description": "a mapping"})',
    ]
    nested = {
        "properties": {"config": {"$ref": "#/definitions/RunConfig", "default": {}, "description": "the run"}},
        "definitions": {
            "RunConfig": {
                "properties": {"seed": {"type": "integer"}, "name": {"type": "string", "description": "x" * 300}}
            }
        },
    }
    assert form_problems(nested) == [
        "config.seed: no description",
        "config.name: description of 300 characters (limit 200)",
    ]


def test_every_deployment_form_field_has_a_default_and_a_description() -> None:
    from configs.load import default_config
    from configs.schema import RunConfig
    from flows.deploy import build_deployments

    deployments = build_deployments()
    assert {d.name for d in deployments} == DEPLOYMENTS
    for deployment in deployments:
        schema = deployment._parameter_openapi_schema.model_dump()  # what `apply` sends to the server
        problems = form_problems(schema)  # the config's nested fields too: each is a field of the form
        assert not problems, f"{deployment.name}'s form:\n" + "\n".join(problems)
        if "config" in schema["properties"]:  # the form starts from configs/nightly.yaml
            assert RunConfig.model_validate(schema["properties"]["config"]["default"]) == default_config()
        order = sorted(schema["properties"], key=lambda name: schema["properties"][name]["position"])
        typed = [name for name in order if name not in ("config", "parent_run_id")]
        assert order[: len(typed)] == typed, f"{deployment.name}'s form opens with {order}: typed fields come first"


def test_prefect_yaml_says_what_llmops_deploys() -> None:
    """infra/prefect.yaml (for `prefect deploy --all`) and flows/deploy.py (`llmops serve`, `llmops worker`)
    describe the same deployments."""
    from flows.deploy import build_deployments

    written = {
        d["name"]: d
        for d in yaml.safe_load((ROOT / "infra" / "prefect.yaml").read_text())["deployments"]
        if d["work_pool"]["name"] == "llmops-cpu"
    }
    built = {d.name: d for d in build_deployments(source=ROOT)}
    assert set(written) == set(built)
    for name, d in built.items():
        w = written[name]
        assert (w["entrypoint"], w["description"], w["tags"]) == (d.entrypoint, d.description, d.tags), name
        assert [s["cron"] for s in w.get("schedules", [])] == [s.schedule.cron for s in d.schedules], name
        assert all(s["timezone"] == "UTC" and s["active"] for s in w.get("schedules", [])), name
        assert w.get("concurrency_limit") == d.concurrency_limit, name
        assert not w.get("parameters"), f"{name}: parameters would replace the flow's defaults (configs/nightly.yaml)"


def llmops(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_worker_without_a_server_is_one_line(tmp_path) -> None:
    from tests.servers import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LLMOPS_"))}
    env.update(PYTHONPATH=str(ROOT), LLMOPS_HOME=str(tmp_path))
    unset = llmops(["worker"], env)
    assert unset.returncode == 2 and "Traceback" not in unset.stderr
    assert unset.stderr.splitlines() == [
        "error: PREFECT_API_URL: is not set; `llmops worker` needs a Prefect server that the UI and the worker share "
        "(a temporary one would vanish with this process); start one with `prefect server start` and export "
        "PREFECT_API_URL=http://127.0.0.1:4200/api"
    ]
    url = f"http://127.0.0.1:{free_port()}/api"
    absent = llmops(["worker"], env | {"PREFECT_API_URL": url})
    assert absent.returncode == 2 and "Traceback" not in absent.stderr
    assert absent.stderr.splitlines()[-1].startswith(f"error: PREFECT_API_URL={url}: no Prefect server answers there")
    assert len(absent.stderr.strip().splitlines()) == 1, absent.stderr


# -- a server, a worker, the REST API the UI uses ----------------------------------------------


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
    def __init__(self, api: Api, worker, tracking_uri: str):
        self.api, self.worker, self.tracking_uri = api, worker, tracking_uri

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

    def run_form(self, full_name: str, form: dict, timeout_s: float = 600) -> dict:
        """What the UI does on "Run" with a filled form."""
        deployment = self.api.deployment(full_name)
        run = self.api.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": form})
        return self.completes(run, timeout_s)


def form(deployment: dict, config_edits: list[str] = (), **values) -> dict:
    """The form as the UI first shows it (every field at its default), with a person's edits."""
    from configs.load import apply_override

    properties = deployment["parameter_openapi_schema"]["properties"]
    filled = {name: copy.deepcopy(prop["default"]) for name, prop in properties.items()}
    for assignment in config_edits:
        apply_override(filled["config"], assignment)
    return filled | values


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_overrides):
    import yaml

    from configs.load import DEFAULT_CONFIG, apply_override

    root = tmp_path_factory.mktemp("deployments")
    home = root / "home"
    home.mkdir()
    # The worker's default config (LLMOPS_CONFIG): the bundled one at test size. The forms start from
    # it, and the scheduled nightly, started with no parameters, runs it.
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
    with prefect_server(root / "server") as server:
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
            yield Stack(api, worker, tracking)


@pytest.mark.slow
def test_every_flow_is_deployed_to_the_pool_from_this_checkout(stack) -> None:
    for name in DEPLOYMENTS:
        d = stack.api.deployment(f"{name}/{name}")
        assert d["work_pool_name"] == POOL, name
        assert d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}], name
        module, _, function = d["entrypoint"].rpartition(".")
        assert f"def {function}(" in (ROOT / (module.replace(".", "/") + ".py")).read_text(), d["entrypoint"]
        assert d["parameters"] == {} and d["enforce_parameter_schema"], name
        assert form_problems(d["parameter_openapi_schema"]) == [], name  # what the UI renders
        crons = [(s["schedule"]["cron"], s["active"]) for s in d["schedules"]]
        assert crons == ([(SCHEDULED[name], True)] if name in SCHEDULED else []), name
    pool = stack.api.get(f"/work_pools/{POOL}")
    assert pool["type"] == "process"


@pytest.mark.slow
def test_the_nightly_schedule_starts_a_run_with_no_parameters_and_it_completes(stack) -> None:
    nightly = stack.api.deployment("nightly/nightly")
    query = {
        "deployments": {"id": {"any_": [nightly["id"]]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": 3,
    }
    deadline = time.monotonic() + 120
    while not (scheduled := stack.api.post("/flow_runs/filter", query)):
        assert time.monotonic() < deadline, "the server's scheduler made no run of the nightly deployment in 120 s"
        time.sleep(2)
    run = scheduled[0]
    starts = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00")).astimezone(timezone.utc)
    assert run["auto_scheduled"] and (starts.hour, starts.minute) == (2, 0)
    assert run["parameters"] == {}  # what crashed every night with ParameterBindError
    now = datetime.now(timezone.utc).isoformat()
    stack.api.post(
        f"/flow_runs/{run['id']}/set_state",
        {"state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": now}}, "force": True},
    )
    stack.completes(run, timeout_s=1200)  # the worker's default config (LLMOPS_CONFIG), on a shared machine

    client = stack.mlflow()
    experiment = client.get_experiment_by_name("llmops")
    parents = client.search_runs([experiment.experiment_id], "tags.`llmops.pipeline` = 'nightly'")
    assert [r.info.status for r in parents] == ["FINISHED"]
    stages = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert {r.data.tags["llmops.stage"] for r in stages} >= {"curate", "train", "evaluate", "promote"}
    [version] = client.search_model_versions("name = 'tiny-arith'")
    assert client.get_model_version("tiny-arith", version.version).tags.get("gate.decision") in {"promote", "reject"}


@pytest.mark.slow
def test_each_stage_from_its_form_joined_by_typed_references(stack, tiny_overrides) -> None:
    # 40 steps on a 2-layer model gain little over its base: the first version needs a gate that
    # promotes it anyway (as in test_nightly.py), the point here being the references, not the gain.
    edits = [*tiny_overrides, "name=form-tiny", f"registry.model_name={FORM_MODEL}", "gate.min_gain_over_base=-1.0"]
    deployment = {
        name: stack.api.deployment(f"{name}/{name}") for name in ("curate", "train", "evaluate", "promote", "nightly")
    }
    client = stack.mlflow()

    stack.run_form("curate/curate", form(deployment["curate"], edits))
    stack.run_form("train/train", form(deployment["train"], edits, dataset="latest"))
    challenger = client.get_model_version_by_alias(FORM_MODEL, "challenger")
    train_run = challenger.run_id  # what a person copies from the MLflow UI or the train run's log
    experiment = client.get_experiment_by_name("llmops").experiment_id
    curated = client.search_runs(
        [experiment], "tags.`llmops.stage` = 'curate' and tags.`llmops.config_name` = 'form-tiny'"
    )
    assert client.get_run(train_run).data.tags["llmops.dataset_hash"] == curated[0].data.tags["llmops.dataset_hash"]

    stack.run_form("evaluate/evaluate", form(deployment["evaluate"], edits, model=f"{FORM_MODEL}@challenger"))
    evaluated = client.search_runs(
        [experiment], f"tags.`llmops.stage` = 'evaluate' and tags.`llmops.model_name` = '{FORM_MODEL}'"
    )
    assert [r.data.tags["llmops.model_version"] for r in evaluated] == [str(challenger.version)]

    stack.run_form("promote/promote", form(deployment["promote"], edits, train_run=train_run))
    champion = client.get_model_version_by_alias(FORM_MODEL, "champion")
    assert champion.version == challenger.version
    # The gate judged on the evaluation the evaluate deployment made, found by the version it scored.
    assert champion.tags["gate.evidence_run_id"] == evaluated[0].info.run_id

    stack.run_form("nightly/nightly", form(deployment["nightly"], edits))
    latest = max(client.search_model_versions(f"name = '{FORM_MODEL}'"), key=lambda v: int(v.version))
    assert int(latest.version) == int(champion.version) + 1
    assert client.get_model_version(FORM_MODEL, latest.version).tags.get("gate.decision") in {"promote", "reject"}
    assert client.get_model_version_by_alias(FORM_MODEL, "champion") is not None


@pytest.mark.slow
def test_ctrl_c_stops_the_worker_and_cancels_the_run_it_had(stack, tiny_overrides) -> None:
    nightly = stack.api.deployment("nightly/nightly")
    edits = [*tiny_overrides, "name=interrupted", "registry.model_name=interrupted-arith"]
    run = stack.api.post(f"/deployments/{nightly['id']}/create_flow_run", {"parameters": form(nightly, edits)})
    children = {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}
    deadline = time.monotonic() + 300
    while not stack.api.post("/flow_runs/filter", children):  # curate has started inside the nightly
        assert time.monotonic() < deadline, f"the nightly run did not start a stage in 300 s\n{stack.worker.log_tail()}"
        time.sleep(1)
    run = stack.api.get(f"/flow_runs/{run['id']}")
    assert run["state_type"] == "RUNNING", run["state_name"]
    seen = len(stack.worker.log.read_text(errors="replace"))

    stack.worker.stop(signal.SIGINT)  # what Ctrl-C in its terminal sends
    assert stack.worker.popen.returncode == 0
    said = stack.worker.log.read_text(errors="replace")[seen:]
    assert "worker stopped" in said and "Traceback" not in said, said
    assert f"cancelled the runs it had in progress: {run['name']}" in said
    run = stack.api.get(f"/flow_runs/{run['id']}")
    assert (run["state_type"], run["state"]["message"]) == (
        "CANCELLED",
        f"stopped with worker {run['labels']['prefect.worker.name']} (Ctrl-C)",
    )
    still_open = {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "PAUSED", "CANCELLING"]}}}}
    assert stack.api.post("/flow_runs/filter", still_open) == []  # its stages too
    with pytest.raises(ProcessLookupError):  # and its processes are gone
        os.killpg(int(run["infrastructure_pid"]), 0)
