"""Every stage from its deployment: a process work pool, `llmops worker`, a real Prefect server.

One Prefect server (fresh PREFECT_HOME, SQLite) and one `llmops worker` process serve the whole
module (tests/flows/deploy_stack.py). Runs are started the way the UI starts them, over the
server's REST API (`POST /deployments/{id}/create_flow_run`) with the form's values: every field's
default from the deployment's parameter schema, edited where a person would edit it. The nightly is
also started the way its schedule starts it: the run the server's scheduler created for 02:00 UTC,
with no parameters, moved to now.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from configs.schema import RunConfig
from tests.flows.deploy_stack import POOL, deploy_stack, form
from tests.unit.test_config_forms import description_problems

ROOT = Path(__file__).resolve().parents[2]
FORM_MODEL = "form-arith"
PLAIN_TYPES = {"string", "boolean", "integer", "number"}
DEPLOYMENTS = {"nightly", "curate", "train", "evaluate", "promote", "prompt", "monitor", "drift"}
SCHEDULED = {"nightly": "0 2 * * *", "monitor": "0 6 * * *", "drift": "0 6 * * *"}
# The config models a form may hold: the whole RunConfig, or one of its sections.
CONFIG_MODELS = {"RunConfig"} | {
    f.annotation.__name__
    for f in RunConfig.model_fields.values()
    if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
}
# What each stage's form holds beyond its typed references: the config file, and the sections it reads.
FORM_SECTIONS = {
    "nightly": {"config"},
    "curate": {"config"},
    "train": {"config_file", "model", "train", "prompt", "registry"},
    "evaluate": {"config_file", "eval"},
    "promote": {"config_file", "gate", "registry"},
    "prompt": {"config_file", "prompt", "gate", "eval"},
    "monitor": {"config_file", "gate", "monitor", "eval"},
    "drift": {"config_file", "drift"},
}
REFERENCES = {
    "nightly": set(),
    "curate": {"parent_run_id"},
    "train": {"dataset"},
    "evaluate": {"model", "dataset", "against", "prompt", "fresh"},
    "promote": {"train_run", "evaluation"},
    "prompt": {"candidate", "model", "dataset", "apply"},
    "monitor": {"model", "dataset"},
    "drift": {"reference", "current", "fail_on_drift"},
}


# -- what a form may hold ---------------------------------------------------------------------


def form_problems(schema: dict) -> list[str]:
    """Why a deployment's form would not start a run as it is, or would show a field a person
    cannot fill: a parameter without a default or a description, or one that is neither a plain
    value (text, number, flag, list of texts, empty-able text) nor a config model (the whole
    RunConfig, or one of its sections); and, inside a config model, every nested field without a
    short description (`description_problems`)."""
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
            if str(kind.get("$ref", "")).removeprefix("#/definitions/") in CONFIG_MODELS:
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
        for name, prop in schema["properties"].items():  # the form starts from the worker's config
            if name == "config":
                assert RunConfig.model_validate(prop["default"]) == default_config()
            elif "$ref" in prop:
                assert prop["default"] == getattr(default_config(), name).model_dump(mode="json"), name
        order = sorted(schema["properties"], key=lambda name: schema["properties"][name]["position"])
        typed = [name for name in order if name in REFERENCES[deployment.name] - {"parent_run_id"}]
        assert order[: len(typed)] == typed, f"{deployment.name}'s form opens with {order}: typed fields come first"


def test_each_form_holds_its_references_and_only_the_config_sections_its_stage_reads() -> None:
    from flows.deploy import build_deployments

    for deployment in build_deployments():
        properties = deployment._parameter_openapi_schema.model_dump()["properties"]
        assert set(properties) == REFERENCES[deployment.name] | FORM_SECTIONS[deployment.name], deployment.name
        sections = {name for name, prop in properties.items() if "$ref" in prop}
        assert sections == FORM_SECTIONS[deployment.name] - {"config_file"}, deployment.name
        # A run from the form reads as its stage in the UI: the flow is named as the stage.
        assert deployment.flow_name == deployment.name


def test_a_form_builds_the_config_from_the_named_file_and_its_own_sections(tmp_path) -> None:
    from configs.load import default_config
    from configs.schema import GateConfig
    from flows.forms import run_config

    named = tmp_path / "other.yaml"
    named.write_text(yaml.safe_dump({"name": "other", "registry": {"model_name": "other-model"}}))
    gate = GateConfig(min_gain_over_base=-1.0)
    config = run_config(str(named), gate=gate)
    assert (config.name, config.registry.model_name, config.gate) == ("other", "other-model", gate)
    assert run_config("", gate=gate).train == default_config().train  # empty: the worker's config


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
    unset = llmops(["worker"], env | {"LLMOPS_PREFECT_SERVER": "ephemeral"})  # the home's server turned off
    assert unset.returncode == 2 and "Traceback" not in unset.stderr
    assert unset.stderr.splitlines() == [
        "error: PREFECT_API_URL: is not set and LLMOPS_PREFECT_SERVER=ephemeral; `llmops worker` needs a Prefect "
        "server that the UI and the worker share (a temporary one would vanish with this process); unset "
        "LLMOPS_PREFECT_SERVER to use this home's own server, or export PREFECT_API_URL=http://HOST:4200/api "
        "(a server you started with `prefect server start`)"
    ]
    url = f"http://127.0.0.1:{free_port()}/api"
    absent = llmops(["worker"], env | {"PREFECT_API_URL": url})
    assert absent.returncode == 2 and "Traceback" not in absent.stderr
    assert absent.stderr.splitlines()[-1].startswith(f"error: PREFECT_API_URL={url}: no Prefect server answers there")
    assert len(absent.stderr.strip().splitlines()) == 1, absent.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_overrides):
    with deploy_stack(tmp_path_factory.mktemp("deployments"), tiny_overrides) as running:
        yield running


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
    named = stack.config_file(edits, "form-tiny")  # the sections a form does not hold come from a file

    stack.run_form("curate/curate", form(deployment["curate"], edits))
    stack.run_form("train/train", form(deployment["train"], edits, config_file=named, dataset="latest"))
    challenger = client.get_model_version_by_alias(FORM_MODEL, "challenger")
    train_run = challenger.run_id  # what a person copies from the MLflow UI or the train run's log
    experiment = client.get_experiment_by_name("llmops").experiment_id
    curated = client.search_runs(
        [experiment], "tags.`llmops.stage` = 'curate' and tags.`llmops.config_name` = 'form-tiny'"
    )
    assert client.get_run(train_run).data.tags["llmops.dataset_hash"] == curated[0].data.tags["llmops.dataset_hash"]

    stack.run_form(
        "evaluate/evaluate", form(deployment["evaluate"], edits, config_file=named, model=f"{FORM_MODEL}@challenger")
    )
    evaluated = client.search_runs(
        [experiment], f"tags.`llmops.stage` = 'evaluate' and tags.`llmops.model_name` = '{FORM_MODEL}'"
    )
    assert [r.data.tags["llmops.model_version"] for r in evaluated] == [str(challenger.version)]

    stack.run_form("promote/promote", form(deployment["promote"], edits, config_file=named, train_run=train_run))
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

    # What Ctrl-C in its terminal sends. The worker then cancels the run and ends its processes: a few
    # seconds alone, more on two cores that the rest of the suite keeps busy, hence the long grace.
    stack.worker.stop(signal.SIGINT, grace_s=90)
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
