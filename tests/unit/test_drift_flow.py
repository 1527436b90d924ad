"""The drift flow under the Prefect test harness, on a real MLflow store, with the real embedding model.

Small sets of the project's own prompts: arithmetic questions from two seeds (no drift) and the
bundled JSON and safety prompts (another domain). Also the UI form, the daily deployment and the
command's exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.data.demo import write_demo_data

pytestmark = pytest.mark.slow
BUNDLED = Path(__file__).resolve().parents[2] / "tasks" / "evaluate" / "data"
SMALL = ["drift.max_rows=60", "drift.permutations=200", "registry.experiment=drift-test"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("drift-flow")
    a = write_demo_data(root / "a", 0, 10, 10, 120)  # clean questions: the train file holds canary and PII rows
    b = write_demo_data(root / "b", 1, 10, 10, 40)
    other = root / "other.jsonl"
    other.write_text(
        "".join(
            json.dumps({"text": json.loads(line)["question"]}) + "\n"
            for name in ("json_format.jsonl", "safety_probes.jsonl")
            for line in (BUNDLED / name).read_text().splitlines()
            if line.strip()
        )
    )
    return {"reference": a["eval"], "same": b["eval"], "other": str(other)}


def _artifacts_of(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_every_parameter_is_a_plain_field_with_a_default_and_a_description():
    from prefect.utilities.callables import parameter_schema

    from flows.drift import drift_flow

    schema = parameter_schema(drift_flow.fn).model_dump()
    props = schema["properties"]
    assert list(props) == ["reference", "current", "config_path", "overrides", "fail_on_drift"]
    assert not schema.get("required")
    for name, prop in props.items():
        assert "default" in prop and len(prop.get("description", "")) > 20, name
        assert prop["type"] in ("string", "boolean", "array"), name
    assert props["reference"]["default"] == "latest" and props["fail_on_drift"]["default"] is True


def test_daily_deployment():
    from flows.deploy import build_deployments

    [deployment] = [d for d in build_deployments() if d.name == "drift"]
    assert (deployment.flow_name, deployment.entrypoint) == ("drift", "flows.forms.drift_form")
    assert [s.schedule.cron for s in deployment.schedules] == ["0 6 * * *"]


def test_flagged_drift_is_logged_raises_an_artifact_and_fails_the_run(prefect_harness, sets, tmp_path):
    from flows.drift import drift_flow
    from registry.tracking import client

    state = drift_flow(reference=sets["reference"], current=sets["other"], overrides=SMALL, return_state=True)
    assert state.is_failed() and "input drift: embedding shift" in state.message
    r = state.result(raise_on_failure=False)
    assert r["flagged"] and "share far from training" in r["reasons"]

    run = client().get_run(r["run_id"])
    assert run.info.status == "FINISHED"  # the check itself worked; it is the inputs that failed it
    assert run.data.tags["llmops.stage"] == "drift" and run.data.tags["llmops.drift.flagged"] == "true"
    assert run.data.metrics["drift.flagged"] == 1.0 and run.data.metrics["drift.far_share"] > 0.15
    assert run.data.params["drift.max_rows"] == "60"
    files = {a.path for a in client().list_artifacts(r["run_id"], "drift")}
    assert files == {"drift/result.json", f"drift/drift-{r['run_id']}.png", "drift/history.png"}
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"drift-reference", "drift-current"}
    stored = json.loads(Path(client().download_artifacts(r["run_id"], "drift/result.json", str(tmp_path))).read_text())
    assert stored["flagged"] and stored["thresholds"]["max_far_share"] == 0.15

    keys = [a.key for a in _artifacts_of(state.state_details.flow_run_id)]
    assert keys == ["input-drift"]


def test_inputs_like_the_training_data_pass_without_an_artifact(prefect_harness, sets):
    from flows.drift import drift_flow

    state = drift_flow(reference=sets["reference"], current=sets["same"], overrides=SMALL, return_state=True)
    assert state.is_completed()
    assert not state.result()["flagged"]
    assert _artifacts_of(state.state_details.flow_run_id) == []


def test_the_command_exits_3_on_drift_0_without_and_2_on_bad_input(prefect_harness, sets, tmp_path, capsys):
    from llmops.cli import main

    common = ["--reference", sets["reference"], *(a for s in SMALL for a in ("--set", s))]
    assert main(["drift", *common, "--current", sets["other"], "--output", str(tmp_path / "out")]) == 3
    out = capsys.readouterr().out
    assert "verdict: DRIFT" in out and "share far from training" in out and "MLflow run:" in out
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["flagged"] is True
    assert (tmp_path / "out" / "drift.png").stat().st_size > 10_000
    assert main(["drift", *common, "--current", sets["same"]]) == 0
    assert "verdict: no drift" in capsys.readouterr().out

    from flows.drift import drift_history

    history = drift_history("drift-test", sets["reference"])  # every run of this module checked this reference
    assert len(history) >= 2 and [h["time"] for h in history] == sorted(h["time"] for h in history)
    assert [h["metrics"]["drift.flagged"] for h in history[-2:]] == [1.0, 0.0]
    assert drift_history("drift-test", "another reference") == []
    assert main(["drift", "--reference", sets["reference"], "--current", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --current ") and "missing.jsonl: no such file or folder" in err and "\n" not in err
