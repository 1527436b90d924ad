"""The whole pipeline at tiny size, under the Prefect test harness, on a real MLflow store.

Three runs in order: a first model that is promoted, a second that the gate rejects (the champion
stays), and a run whose evaluation crashes (the registry stays exactly as it was).
"""

from __future__ import annotations

import json

import pytest

from configs.load import load_config

pytestmark = pytest.mark.slow
MODEL = "tiny-arith-test"


@pytest.fixture(scope="module")
def run_nightly(prefect_harness, tiny_overrides):
    from flows.nightly import nightly_flow

    def run(*extra: str) -> dict:
        overrides = tiny_overrides + [f"registry.model_name={MODEL}", "registry.experiment=nightly-test", *extra]
        return nightly_flow(load_config(None, overrides))

    return run


def registry_state() -> dict:
    from registry.models import list_versions

    try:
        return {v.version: sorted(v.aliases) for v in list_versions(MODEL)}
    except Exception:
        return {}


@pytest.fixture(scope="module")
def first(run_nightly):
    return run_nightly("gate.min_gain_over_base=-1.0")


def test_first_run_promotes_and_records_everything(first):
    from registry.tracking import client

    c = client()
    assert first["promote"]["decision"] == "promote"
    assert registry_state() == {1: ["challenger", "champion"]}

    parent = c.get_run(first["run_id"])
    children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{first['run_id']}'")
    assert sorted(r.data.tags["llmops.stage"] for r in children) == ["curate", "evaluate", "promote", "train"]
    assert all(r.info.status == "FINISHED" for r in children)

    curate = first["curate"]
    assert curate["kept"] + sum(curate["dropped"].values()) == curate["read"]
    assert {"exact_duplicate", "near_duplicate", "bad_json", "too_short"} <= set(curate["dropped"])
    curate_run = c.get_run(curate["run_id"])
    assert curate_run.data.metrics["rows_read"] == curate["read"]
    assert curate_run.data.metrics["dropped.exact_duplicate"] == curate["dropped"]["exact_duplicate"]
    assert {d.dataset.name for d in curate_run.inputs.dataset_inputs} >= {"curated-sft", "eval"}

    train_run = c.get_run(first["train"]["run_id"])
    assert train_run.data.tags["llmops.prompt"] == f"arith-qa/{first['train']['prompt_version']}"
    assert len(c.get_metric_history(train_run.info.run_id, "sft/loss")) >= 5
    artifacts = {a.path for a in c.list_artifacts(train_run.info.run_id)}
    assert {"adapter", "config", "lineage"} <= artifacts

    eval_artifacts = {a.path for a in c.list_artifacts(first["evaluate"]["run_id"], "eval")}
    assert {"eval/base_items.json", "eval/candidate_items.json"} <= eval_artifacts

    version = c.get_model_version(MODEL, "1")
    assert version.tags["lineage.dataset_hash"] == curate["dataset_hash"]
    assert version.tags["lineage.train_run_id"] == first["train"]["run_id"]
    assert len(version.tags["lineage.config_hash"]) == 64
    assert version.tags["gate.decision"] == "promote"
    assert "## Intended use" in version.description and "## Limitations" in version.description


def test_prompt_is_registered_once(first):
    import mlflow

    from registry.prompts import register_prompt_template
    from tasks.data.demo import QUESTION_TEMPLATE

    prompt = mlflow.genai.load_prompt(f"prompts:/arith-qa/{first['train']['prompt_version']}")
    assert prompt.template == QUESTION_TEMPLATE
    assert register_prompt_template("arith-qa", QUESTION_TEMPLATE) == first["train"]["prompt_version"]


def test_rejected_candidate_leaves_champion(first, run_nightly):
    second = run_nightly("gate.min_gain_over_base=1.0")  # no model can gain more than 100 %
    assert second["promote"]["decision"] == "reject"
    assert registry_state() == {1: ["champion"], 2: ["challenger"]}
    assert "champion" in second["evaluate"]["exact_match"]  # it was compared with the champion


def test_crashed_evaluation_leaves_registry_as_it_was(first, run_nightly, tmp_path):
    from registry.tracking import client

    before = registry_state()
    assert before  # the earlier tests registered versions
    bad_eval = tmp_path / "eval.jsonl"
    bad_eval.write_text(json.dumps({"id": "x", "prompt": "no question field"}) + "\n")
    train = first["curate"]["sft_path"]
    with pytest.raises(Exception):
        run_nightly(f"data.inputs=[{train}]", f"data.eval_path={bad_eval}")
    assert registry_state() == before
    failed = client().search_runs([client().get_experiment_by_name("nightly-test").experiment_id],
                                  "attributes.status = 'FAILED'")
    assert {r.data.tags["llmops.stage"] for r in failed} >= {"evaluate"}
