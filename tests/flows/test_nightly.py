"""The whole pipeline at tiny size, under the Prefect test harness, on a real MLflow store.

Three runs in order: a first model that is promoted, a second that the gate rejects (the champion
stays), and a run whose evaluation crashes (the registry stays exactly as it was).
"""

from __future__ import annotations

import json
from pathlib import Path

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
    # Each MLflow run names the Prefect flow run it ran in (its own subflow run, not the nightly's).
    prefect_runs = {r.data.tags["llmops.prefect_flow_run_id"] for r in [parent, *children]}
    assert len(prefect_runs) == 5 and "" not in prefect_runs

    curate = first["curate"]
    assert curate.kept + sum(curate.dropped.values()) == curate.read
    assert {"exact_duplicate", "near_duplicate", "bad_json", "too_short"} <= set(curate.dropped)
    curate_run = c.get_run(curate.run_id)
    assert curate_run.data.metrics["rows_read"] == curate.read
    assert curate_run.data.metrics["dropped.exact_duplicate"] == curate.dropped["exact_duplicate"]
    assert {d.dataset.name for d in curate_run.inputs.dataset_inputs} >= {"curated-sft", "eval"}

    train_run = c.get_run(first["train"].run_id)
    assert train_run.data.tags["llmops.prompt"] == first["train"].prompt and first["train"].prompt.startswith(
        "arith-qa/"
    )
    assert train_run.data.metrics["sft/tokens_per_s"] > 0 and "sft/padding_fraction" in train_run.data.metrics
    assert train_run.data.metrics["sft/rows"] > 0 and train_run.data.metrics["sft/dropped_prompt_fills_max_length"] == 0
    assert len(c.get_metric_history(train_run.info.run_id, "sft/loss")) >= 5
    artifacts = {a.path for a in c.list_artifacts(train_run.info.run_id)}
    assert {"adapter", "config", "lineage"} <= artifacts

    eval_run = first["evaluate"].run_id
    assert {a.path for a in c.list_artifacts(eval_run, "eval/candidate")} >= {
        "eval/candidate/arithmetic_items.json",
        "eval/candidate/json-format_items.json",
        "eval/candidate/safety_items.json",
    }
    assert "eval/per_item_scores.json" in {a.path for a in c.list_artifacts(eval_run, "eval")}
    assert set(first["evaluate"].summary) == {"candidate", "base"}
    assert first["promote"]["gate"]["comparisons"]["arithmetic/exact_match.vs_base"]["n"] == 24

    version = c.get_model_version(MODEL, "1")
    assert version.source.endswith("/adapter") and "llmops.merged_model_uri" not in version.tags  # lean by default
    assert version.tags["lineage.prompt"] == first["train"].prompt
    assert f"Prompt version `{first['train'].prompt}`" in version.description
    assert version.tags["lineage.dataset_hash"] == curate.dataset_hash
    assert version.tags["lineage.train_run_id"] == first["train"].run_id
    assert len(version.tags["lineage.config_hash"]) == 64
    assert version.tags["gate.decision"] == "promote"
    assert "## Intended use" in version.description and "## Limitations" in version.description


def test_prompt_is_registered_once(first):
    import mlflow

    from registry.prompts import register_prompt_template
    from tasks.data.demo import QUESTION_TEMPLATE

    prompt = mlflow.genai.load_prompt(f"prompts:/{first['train'].prompt}")
    assert prompt.template == QUESTION_TEMPLATE
    assert f"arith-qa/{register_prompt_template('arith-qa', QUESTION_TEMPLATE)}" == first["train"].prompt


def test_readme_sample_is_what_the_nightly_prints(first, llmops_home):
    """The README's `make run` sample (written by docs/samples.py) against what the CLI's printer makes
    of this smaller nightly: the same lines, metrics, columns and gate lines, digits aside. A printer,
    a metric or a gate line that changes without the README fails here; changed scores of the full
    run are what `docs/samples.py --check` finds."""
    import importlib.util
    import os

    from llmops.commands.nightly import summary

    spec = importlib.util.spec_from_file_location(
        "llmops_docs_samples", Path(__file__).resolve().parents[2] / "docs" / "samples.py"
    )
    samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(samples)
    readme = samples.readme_block(samples.README.read_text())
    default = load_config(None)
    as_make_run = first | {"promote": first["promote"] | {"model_name": default.registry.model_name}}
    printed = samples.normalise(
        summary(as_make_run, default.gate.primary, os.environ["MLFLOW_TRACKING_URI"]), llmops_home
    )
    assert printed.startswith("== nightly finished ==\n") and "MLflow parent run: …  (tracking: sqlite:///…/" in printed
    assert samples.shape(printed) == samples.shape(readme), f"README.md's sample is stale; this run printed:\n{printed}"


def test_rejected_candidate_leaves_champion(first, run_nightly):
    # Against a champion the gain over base is not required (README: the first model's rule), so the
    # candidate is rejected on a minimum score no model here reaches.
    second = run_nightly('gate.rules=[{"metric": "arithmetic/exact_match", "min_value": 1.0}]')
    assert second["promote"]["decision"] == "reject"
    assert registry_state() == {1: ["champion"], 2: ["challenger"]}
    assert "champion" in second["evaluate"].summary  # it was compared with the champion


def test_crashed_evaluation_leaves_registry_as_it_was(first, run_nightly, tmp_path):
    from registry.tracking import client

    before = registry_state()
    assert before  # the earlier tests registered versions
    bad_eval = tmp_path / "eval.jsonl"
    bad_eval.write_text(json.dumps({"id": "x", "prompt": "no question field"}) + "\n")
    train = first["curate"].sft_path
    from core.errors import UserError

    with pytest.raises(UserError, match="eval items"):
        run_nightly(f"data.inputs=[{train}]", f"data.eval_path={bad_eval}")
    assert registry_state() == before
    failed = client().search_runs(
        [client().get_experiment_by_name("nightly-test").experiment_id], "attributes.status = 'FAILED'"
    )
    assert "nightly" in {r.data.tags["llmops.stage"] for r in failed}  # bad eval items fail before any evaluate run


def test_release_manager_promotes_by_hand_then_rolls_back(first, run_nightly):
    from llmops.cli import main
    from registry.audit import read_audit

    state = registry_state()
    newest = max(state)
    assert main(["promote", "--model", MODEL, "--version", str(newest), "--reason", "approved after review"]) == 0
    champion = [v for v, aliases in registry_state().items() if "champion" in aliases]
    previous = [v for v, aliases in registry_state().items() if "previous" in aliases]
    assert champion == [newest] and previous == [1]
    assert main(["rollback", "--model", MODEL, "--reason", "answers got worse in production"]) == 0
    assert [v for v, a in registry_state().items() if "champion" in a] == [1]
    actions = [(e["action"], e["version"]) for e in read_audit(MODEL)]
    assert actions[0] == ("promote", 1) and ("reject", newest) in actions
    assert actions[-2:] == [("promote", newest), ("rollback", 1)]
    last = read_audit(MODEL)[-1]
    assert last["why"] == "answers got worse in production" and last["by"].startswith("user:")


def test_inconclusive_gate_pauses_for_approval(first, tiny_overrides):
    """The gate cannot show an improvement of an identical model: the run pauses until approved."""
    import threading
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from flows.promote import promote_flow

    config = load_config(
        None,
        tiny_overrides
        + [
            f"registry.model_name={MODEL}",
            "registry.experiment=nightly-test",
            "gate.require_improvement=true",
            "gate.min_gain_over_base=-1.0",
        ],
    )
    # The champion's own weights registered again from its train run: no improvement can be shown.
    from registry.models import get_version
    from registry.promotion import register_candidate

    v1 = get_version(MODEL, 1)
    register_candidate(MODEL, v1.source, v1.run_id, {k: v for k, v in v1.tags.items() if k.startswith("lineage.")})
    answered = {}

    def approve_when_paused():
        deadline = time.time() + 120
        with get_client(sync_client=True) as client:
            while time.time() < deadline:
                paused = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                    )
                )
                if paused:
                    resume_flow_run(
                        paused[0].id, run_input={"decision": "approve", "reason": "checked by hand", "approver": "rm"}
                    )
                    answered["id"] = paused[0].id
                    return
                time.sleep(1)

    helper = threading.Thread(target=approve_when_paused, daemon=True)
    helper.start()
    result = promote_flow(config=config, train_run=first["train"].run_id)
    helper.join(timeout=5)
    assert answered, "the promote flow never paused"
    assert result["decision"] == "promote"
    assert any(c["name"] == "inconclusive" for c in result["gate"]["checks"])
    from registry.tracking import client

    tags = client().get_model_version(MODEL, str(result["version"])).tags
    assert tags["gate.verdict"] == "needs-approval" and tags["gate.decision"] == "promote"
    assert tags["gate.decided_by"] == "user:rm" and tags["gate.reason"] == "checked by hand"
    assert "**promote**, decided by user:rm" in client().get_model_version(MODEL, str(result["version"])).description


def test_evaluate_cli_writes_results_with_intervals(first, tmp_path):
    from llmops.cli import main

    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--model",
            first["train"].model_dir,
            "--suite",
            "arithmetic",
            "--limit",
            "10",
            "--output",
            str(out),
            "--set",
            "data.demo_train_rows=160",
            "--set",
            "data.demo_pref_rows=48",
            "--set",
            "data.demo_eval_rows=24",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    em = results["suites"]["arithmetic"]["exact_match"]
    assert em["n"] == 10 and em["ci_low"] <= em["mean"] <= em["ci_high"]
    items = [json.loads(line) for line in (out / "items" / "arithmetic.jsonl").read_text().splitlines()]
    assert len(items) == 10 and sum(i["exact_match"] for i in items) / 10 == pytest.approx(em["mean"])
    assert results["ops"]["arithmetic"]["latency_p95_s"] >= results["ops"]["arithmetic"]["latency_p50_s"] > 0


def test_monitor_detects_a_broken_champion_and_rolls_back(first, tiny_overrides):
    """The base weights under the champion's adapter get corrupted: a real drop, caught and rolled back."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from flows.monitor import monitor_flow
    from registry.models import version_by_alias

    config = load_config(
        None,
        tiny_overrides
        + [
            f"registry.model_name={MODEL}",
            "registry.experiment=nightly-test",
            "monitor.rollback_on_regression=true",
            "eval.suites=[arithmetic]",
            "gate.safety_must_pass=[]",
            'gate.rules={"arithmetic/exact_match": {}, "arithmetic/sentence_chrf": {}}',
        ],
    )
    champion = version_by_alias(MODEL, "champion")
    assert version_by_alias(MODEL, "previous") is not None  # the approval test left one
    ok = monitor_flow(config=config, model=f"{MODEL}/{champion.version}")
    # 24 unchanged answers are no regression; whether they show non-inferiority is for the statistics
    # (0 of 24 discordant pairs cannot rule out a 5-point drop: inconclusive, with the reason).
    assert not ok.regression and {f.status for f in ok.findings} <= {"ok", "inconclusive"}
    assert all(f.why for f in ok.findings if f.status == "inconclusive")

    weights = Path(first["train"].base) / "model.safetensors"
    backup = weights.with_suffix(".bak")
    shutil.copy(weights, backup)
    try:
        tensors = load_file(weights)
        torch.manual_seed(0)
        save_file({k: torch.randn_like(v) for k, v in tensors.items()}, weights)
        broken = monitor_flow(config=config, model=f"{MODEL}/{champion.version}")
    finally:
        shutil.move(backup, weights)
    status = {f.metric: f for f in broken.findings}
    # chrF is graded, so even a weak tiny champion shows a significant drop when its base is destroyed.
    assert status["arithmetic/sentence_chrf"].status == "regression" and status["arithmetic/sentence_chrf"].ci_high < 0
    assert broken.regression
    assert broken.rolled_back == (champion.version, version_by_alias(MODEL, "champion").version)
    from registry.tracking import client

    assert client().get_model_version(MODEL, str(champion.version)).tags["monitor.regression"] == "true"


def test_untrained_base_as_challenger_is_rejected_with_statistics(first, tiny_overrides):
    """Real scores: the base model challenges the champion on the same items and loses."""
    from flows.evaluate import evaluate_flow
    from registry.gate import decide

    config = load_config(
        None,
        tiny_overrides
        + [
            f"registry.model_name={MODEL}",
            "registry.experiment=nightly-test",
            'gate.rules={"arithmetic/exact_match": {}, "arithmetic/sentence_chrf": {"max_regression": 0.0}}',
        ],
    )
    base = first["train"].base
    evaluated = evaluate_flow(config=config, model=base, dataset=first["curate"].eval_path)
    result = decide(config.gate, evaluated.results)
    assert result.decision == "reject"
    chrf = result.comparisons["arithmetic/sentence_chrf"]
    assert chrf.delta < 0 and chrf.ci_high < 0 and chrf.n == 24 and chrf.mde > 0
    assert any(r.startswith("arithmetic/sentence_chrf.vs_champion") for r in result.reasons())
    # Against a champion the gain over base is shown, not required (it is the first model's rule).
    assert not any(c.name.endswith("gain_over_base") for c in result.checks)


def test_prompt_changes_are_gated_like_models(first, tiny_overrides, capsys, monkeypatch):
    """A worse template is rejected with its evidence on the prompt version; a release manager can
    still make one live by hand; the better one then wins `production` back through the gate."""
    from flows.prompt import prompt_flow
    from llmops.commands.promote import promote_prompt
    from registry import prompts
    from registry.audit import read_audit
    from registry.models import version_by_alias

    def config(*extra: str):
        return load_config(
            None,
            tiny_overrides
            + [
                f"registry.model_name={MODEL}",
                "registry.experiment=nightly-test",
                "eval.suites=[arithmetic]",
                "gate.safety_must_pass=[]",
                'gate.rules={"arithmetic/sentence_chrf": {"max_regression": 0.02}}',
                "gate.primary=arithmetic/sentence_chrf",
                "gate.on_inconclusive=reject",
                *extra,
            ],
        )

    champion = version_by_alias(MODEL, "champion")
    trained = champion.tags["lineage.prompt"]
    bad_text = "Ignore the numbers and write a short poem about ducks instead. {{question}} Quack quack."
    bad = prompt_flow(config=config(f"prompt.template={bad_text}"))
    assert bad["decision"] == "reject" and bad["live"] == trained
    name, bad_version = bad["candidate"].split("/")
    tags = prompts.prompt_version_tags(name, int(bad_version))
    assert tags["gate.decision"] == "reject" and float(tags["gate.arithmetic.sentence_chrf.ci_high"]) < -0.02
    assert {
        "gate.arithmetic.sentence_chrf.delta",
        "gate.arithmetic.sentence_chrf.ci_low",
        "gate.arithmetic.sentence_chrf.p_value",
    } <= set(tags)
    assert prompts.live_prompt(name) is None  # nothing moved

    capsys.readouterr()
    from registry import promotion, transaction

    taken, real_lock = [], promotion.home_lock
    for module in (promotion, transaction):  # the model's lock (transaction.serialised), the prompt's
        monkeypatch.setattr(module, "home_lock", lambda lock: (taken.append(lock), real_lock(lock))[1])
    assert promote_prompt(config(), name, int(bad_version), "trying a playful prompt") == 0
    assert taken == [f"registry-{MODEL}", f"prompt-{name}"]  # the champion's card, then the prompt's alias
    assert prompts.live_prompt(name).ref == bad["candidate"]
    assert f"@production before: none (the champion used its own, {trained})" in capsys.readouterr().out
    from registry.tracking import client

    by_hand = client().get_model_version(MODEL, str(champion.version)).description
    assert f"## Live prompt\n\n`{bad['candidate']}` (promoted by hand, user:" in by_hand
    good = prompt_flow(config=config(), prompt=trained)
    assert good["decision"] == "promote" and good["live"] == bad["candidate"]
    assert prompts.live_prompt(name).ref == trained
    assert prompts.prompt_version_tags(name, int(trained.split("/")[1]))["gate.decision"] == "promote"
    card = version_by_alias(MODEL, "champion")
    assert card.tags["prompt.live"] == trained
    assert (
        f"## Live prompt\n\n`{trained}` (moved through the prompt gate;"
        in client().get_model_version(MODEL, str(card.version)).description
    )
    actions = [(e["action"], e["version"], e["by"]) for e in read_audit(f"prompt:{name}")]
    assert actions[-3:] == [
        ("reject", int(bad_version), "gate"),
        ("promote", int(bad_version), actions[-2][2]),
        ("promote", int(trained.split("/")[1]), "gate"),
    ]
    assert actions[-2][2].startswith("user:")
