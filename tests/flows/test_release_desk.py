"""The release manager's desk, as a person uses it: the home's own Prefect server, `llmops worker`
deploying the forms to it, a version the gate cannot judge, and its approval in the Prefect UI.

`llmops worker` runs with only LLMOPS_HOME (and the test-size config) set, as in a user's shell: it
starts the home's Prefect server (llmops/server.py) and deploys there, so the forms and the
command-line history share one UI. A nightly from its form makes v1 champion; the train form, with
another seed, registers v2, which 24 items cannot show better (`gate.require_improvement`), so the
promote form's run pauses; cancelled, it leaves the card saying nobody decided, and a second run pauses
again. Headless Chromium then opens that run in the Prefect UI, reads the form (the gate's
numbers, the links), is refused a blank reason, approves with a reason and a name, and the test
finds `promote` with the approver in `llmops models`, the version's tags, its card and the Prefect
model-card artifact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.browser import Browser, chromium_missing
from tests.flows.deploy_stack import POOL, Api, Stack, form, small_home, worker_online
from tests.servers import started

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MODEL = "desk-arith"
APPROVER, REASON = "rm-desk", "the 24 items read by hand: same answers as v1"


@pytest.fixture(scope="module")
def desk(tmp_path_factory, tiny_overrides):
    """A worker on the home's own server (started by the worker itself), stopped with the home's server."""
    from llmops.server import read_state, stop_server

    root = tmp_path_factory.mktemp("desk")
    home, tracking = small_home(root, tiny_overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "LLMOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking,
        "LLMOPS_CONFIG": str(root / "small.yaml"),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }

    def ready() -> bool:
        state = read_state(home)
        return bool(state) and worker_online(Api(state["api_url"]), POOL)

    cmd = [sys.executable, "-m", "llmops.cli", "worker", "--pool", POOL]
    try:
        with started(
            cmd,
            name="llmops worker",
            log=root / "worker.log",
            env=env,
            ready=ready,
            timeout_s=420,
            stop_signal=signal.SIGINT,
        ) as worker:
            yield Stack(Api(read_state(home)["api_url"]), worker, tracking, home, root / "small.yaml", env)
    finally:
        stop_server(home, force=True)


def test_the_worker_deploys_every_form_to_the_home_server(desk):
    from llmops.server import read_state

    state = read_state(desk.home)
    assert f"the Prefect server of this home: {state['ui_url']}" in desk.worker.log_tail(20000)
    for name in ("train", "evaluate", "promote", "prompt", "monitor", "drift"):
        assert desk.api.deployment(f"{name}/{name}")["entrypoint"] == f"flows.forms.{name}_form"


def llmops_cli(desk: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], env=desk.env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")
def test_a_release_manager_approves_in_the_prefect_form_and_every_record_says_so(desk, tiny_overrides):
    from llmops.server import read_state

    edits = [*tiny_overrides, "name=desk", f"registry.model_name={MODEL}", "gate.min_gain_over_base=-1.0"]
    named = desk.config_file(edits, "desk")
    nightly = desk.api.deployment("nightly/nightly")
    desk.run_form("nightly/nightly", form(nightly, edits), timeout_s=1200)
    client = desk.mlflow()
    retrain = form(desk.api.deployment("train/train"), [*edits, "train.seed=1"], named)
    desk.run_form("train/train", retrain, timeout_s=900)
    v2 = client.get_model_version_by_alias(MODEL, "challenger")  # another seed: other weights
    assert int(v2.version) == 2

    promote = desk.api.deployment("promote/promote")
    values = form(promote, [*edits, "gate.require_improvement=true"], config_file=named, train_run=v2.run_id)
    run = desk.api.post(f"/deployments/{promote['id']}/create_flow_run", {"parameters": values})
    run = desk.wait(run, timeout_s=900)
    assert run["state_type"] == "PAUSED", f"{run['state_name']}: {desk.api.logs(run['id'])}"

    # While it waits, the card says so, in MLflow and as the Prefect artifact.
    waiting = client.get_model_version(MODEL, v2.version)
    assert "waiting for a release manager" in waiting.description
    assert waiting.tags["gate.decision"] == "needs-approval"
    card = latest_card(desk.api)
    assert card["description"] == f"{MODEL} v{v2.version}: needs-approval, waiting for a release manager"

    # Cancelled while it waits (the UI's Cancel): the card stops saying it waits, nothing is decided.
    desk.api.post(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    cancelled = desk.wait(run, timeout_s=120)
    assert cancelled["state_type"] in {"CANCELLED", "CRASHED"}, cancelled["state_name"]
    left = client.get_model_version(MODEL, v2.version)
    assert "waiting for a release manager" not in left.description
    assert "the run that waited for a release manager was stopped unanswered" in left.description
    assert left.tags["gate.decision"] == "needs-approval"
    assert int(client.get_model_version_by_alias(MODEL, "champion").version) == 1

    # Asked again: a new promote run reads the same evaluation and waits for the form.
    run = desk.api.post(f"/deployments/{promote['id']}/create_flow_run", {"parameters": values})
    run = desk.wait(run, timeout_s=900)
    assert run["state_type"] == "PAUSED", f"{run['state_name']}: {desk.api.logs(run['id'])}"
    card = latest_card(desk.api)

    ui = read_state(desk.home)["ui_url"]
    with Browser() as browser:
        browser.open(f"{ui}/runs/flow-run/{run['id']}", wait_for="Paused")
        browser.run("byText('button', 'Resume').click(); await sleep(2500);")
        modal = browser.value("document.querySelector('[role=dialog]').innerText")
        links = browser.value("[...document.querySelectorAll('[role=dialog] a')].map(a => a.href)")
        if os.environ.get("LLMOPS_TEST_SHOTS"):  # a folder to keep a picture of the form in, for a person
            browser.screenshot(Path(os.environ["LLMOPS_TEST_SHOTS"]) / "approval-form.png")
        browser.run(answer("approve", "   ", APPROVER))  # a blank reason is refused: the run stays paused
        assert desk.api.get(f"/flow_runs/{run['id']}")["state_type"] == "PAUSED"
        browser.run(answer("approve", REASON, APPROVER))
    run = desk.resumed(run)

    gate = gate_of(client, v2.version)
    comp = gate["comparisons"]["arithmetic/exact_match"]
    assert f"{MODEL} v{v2.version} needs a release manager: arithmetic/exact_match: " in modal
    assert f"delta {comp['delta']:+.3f} [{comp['ci_low']:+.3f}, {comp['ci_high']:+.3f}]" in modal
    assert f"minimum detectable effect {comp['mde']:.3f}, n={comp['n']} paired items" in modal
    for field in ("Decision", "Reason", "Approver"):
        assert f"\n{field}\n" in modal and "(Optional)" not in modal
    assert f"http://127.0.0.1:5000/#/models/{MODEL}/versions/{v2.version}" in links
    assert f"{ui}/artifacts/artifact/{card['id']}" in links
    assert any(f"/runs/{gate['evidence']}" in link for link in links), links

    decided = client.get_model_version(MODEL, v2.version)
    assert {k: decided.tags[k] for k in ("gate.decision", "gate.verdict", "gate.decided_by", "gate.reason")} == {
        "gate.decision": "promote",
        "gate.verdict": "needs-approval",
        "gate.decided_by": f"user:{APPROVER}",
        "gate.reason": REASON,
    }
    assert client.get_model_version_by_alias(MODEL, "champion").version == v2.version
    decision = decided.description.split("## Decision", 1)[1].split("\n## ", 1)[0]
    assert f"**promote**, decided by user:{APPROVER}" in decision and f"Reason: {REASON}" in decision
    assert "The gate's own verdict: **needs-approval**" in decision and "waiting" not in decided.description
    final = latest_card(desk.api)
    assert final["description"] == f"{MODEL} v{v2.version}: promote (user:{APPROVER})"
    assert final["data"] == decided.description

    models = llmops_cli(desk, "models", MODEL)
    assert models.returncode == 0, models.stderr
    lines = models.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"  v{v2.version} "))
    assert "aliases=challenger,champion " in lines[row] and "decision=promote " in lines[row]
    assert any(line.startswith("  v1 ") and "aliases=previous " in line for line in lines), lines
    assert lines[row + 1].strip() == f"by user:{APPROVER} (gate verdict needs-approval): {REASON}"


def answer(decision: str, reason: str, approver: str) -> str:
    """Fill the resume form as a person does (pick, type) and press Submit."""
    return f"""
        const modal = document.querySelector('[role=dialog]');
        const select = modal.querySelector('select');
        select.value = {json.dumps(decision)}; select.dispatchEvent(new Event('change', {{bubbles: true}}));
        const [reason, approver] = modal.querySelectorAll('textarea');
        typeInto(reason, {json.dumps(reason)});
        typeInto(approver, {json.dumps(approver)});
        await sleep(500);
        byText('button', 'Submit').click();
        await sleep(3000);
    """


def latest_card(api: Api) -> dict:
    query = {"artifacts": {"key": {"any_": ["model-card"]}}, "sort": "CREATED_DESC", "limit": 1}
    [artifact] = api.post("/artifacts/filter", query)
    return artifact


def gate_of(client, version: str) -> dict:
    """The gate's result as the promote run logged it, with the evaluate run it read."""
    experiment = client.get_experiment_by_name("llmops").experiment_id
    query = f"tags.`llmops.stage` = 'promote' and tags.`llmops.model_version` = '{version}'"
    promote_run = client.search_runs([experiment], query, order_by=["attributes.start_time DESC"])[0]  # the last
    local = client.download_artifacts(promote_run.info.run_id, "gate.json")
    gate = json.loads(Path(local).read_text())
    return gate | {"evidence": client.get_model_version(MODEL, version).tags["gate.evidence_run_id"]}
