"""The same commands against a team's servers: MLflow and Prefect servers on PostgreSQL.

A private PostgreSQL cluster (Debian's `postgresql` binaries, a temporary folder, 127.0.0.1)
holds both servers' databases; the MLflow server proxies artifacts to a folder, so runs get
`mlflow-artifacts:` URIs as with an object store. `llmops nightly` runs as a user runs it: a
separate process with MLFLOW_TRACKING_URI and PREFECT_API_URL set, and nothing recorded locally.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import ServerError, mlflow_server, postgres_bin, postgres_cluster, prefect_server

ROOT = Path(__file__).resolve().parents[2]
MODEL = "team-arith"
ERROR_PREFIX = "error: MLFLOW_TRACKING_URI="


def cli_env(home: Path, tracking_uri: str, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: this checkout first on the path, the servers named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LLMOPS_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "LLMOPS_HOME": str(home),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PREFECT_HOME": str(home / "prefect"),
            **extra,
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def llmops(args: list[str], env: dict[str, str], timeout_s: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- no server needed ---------------------------------------------------------------------------


def test_unreachable_server_is_one_line_naming_the_tracking_uri(tmp_path):
    from tests.servers import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = llmops(["models"], cli_env(tmp_path, uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"), timeout_s=120)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        f"{ERROR_PREFIX}{uri}: the MLflow server refused the connection (0 retries over about 0 s); check that it "
        f"is running and reachable from this machine (curl {uri}/health), then run the command again "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT set how long to wait)"
    ]
    assert "Traceback" not in result.stderr


RETRY_VARS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)


def test_default_retries_give_up_within_a_minute_and_a_users_value_wins(monkeypatch):
    from core.paths import setup_environment

    for var in RETRY_VARS:
        monkeypatch.delenv(var, raising=False)
    setup_environment()
    retries, factor, jitter, _ = (float(os.environ[v]) for v in RETRY_VARS)
    # urllib3 sleeps factor * 2**(k-1) s (+ up to `jitter` s) before retry k >= 2; k = 1 at once.
    assert sum(factor * 2 ** (k - 1) + jitter for k in range(2, int(retries) + 1)) <= 60
    assert retries >= 3  # a server restart (about 10 s) is ridden out, not reported
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    setup_environment()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"


# -- the servers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql; .ci/run does)")
    pytest.importorskip("psycopg", reason="the [server] extra is not installed (pip install '.[server]')")
    try:
        with postgres_cluster(("mlflow", "prefect", "mlflow_stop", "mlflow_login", "mlflow_auth")) as cluster:
            yield cluster
    except ServerError as err:
        pytest.skip(f"PostgreSQL could not start here: {err}")


@pytest.fixture(scope="module")
def servers(postgres, tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    with (
        mlflow_server(postgres.url("mlflow", "psycopg"), root / "artifacts") as ml,
        prefect_server(root / "prefect-server", postgres.url("prefect", "asyncpg")) as pf,
    ):
        yield {"mlflow": ml, "prefect": pf, "artifacts": root / "artifacts", "root": root}


def server_client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def prefect_post(api_url: str, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(
        f"{api_url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def two_nightlies(servers, tiny_overrides):
    home = servers["root"] / "client-home"
    env = cli_env(home, servers["mlflow"].url, servers["prefect"].api_url)
    sets = [a for o in tiny_overrides + [f"registry.model_name={MODEL}"] for a in ("--set", o)]
    first = llmops(["nightly", *sets, "--set", "gate.min_gain_over_base=-1.0"], env)
    assert first.returncode == 0, first.stderr[-4000:]
    second = llmops(["nightly", *sets], env)
    assert second.returncode == 0, second.stderr[-4000:]
    return first, second, home


@pytest.mark.slow
def test_nightly_twice_records_everything_on_the_servers(servers, two_nightlies):
    first, second, home = two_nightlies
    c = server_client(servers["mlflow"].url)
    assert f"registry: {MODEL} v1 -> promote" in first.stdout
    assert f"registry: {MODEL} v2 -> " in second.stdout
    assert f"(tracking: {servers['mlflow'].url})" in second.stdout

    versions = {
        int(v.version): c.get_model_version(MODEL, v.version) for v in c.search_model_versions(f"name = '{MODEL}'")
    }
    assert sorted(versions) == [1, 2]
    champion = c.get_model_version_by_alias(MODEL, "champion")
    assert int(champion.version) in (1, 2)
    assert int(c.get_model_version_by_alias(MODEL, "challenger").version) == 2
    for v in versions.values():
        # Registered from the adapter folder in the server's artifact store, not a client-side path.
        run = c.get_run(v.run_id)
        assert v.source.startswith("mlflow-artifacts:/") and v.source == f"{run.info.artifact_uri}/adapter", v.source
        assert v.tags["lineage.train_run_id"] == v.run_id and run.info.status == "FINISHED"

    prompt_version = c.get_run(versions[2].run_id).data.tags["llmops.prompt"].split("/")[1]
    prompt = c.load_prompt(f"prompts:/arith-qa/{prompt_version}")
    from tasks.data.demo import QUESTION_TEMPLATE

    assert prompt.template == QUESTION_TEMPLATE

    # Artifacts went through the server into its store: the adapter of each run is there.
    adapters = sorted(servers["artifacts"].rglob("adapter_config.json"))
    assert len([p for p in adapters if p.parent.name == "adapter"]) == 2
    assert {a.path for a in c.list_artifacts(versions[2].run_id)} >= {"adapter", "config", "lineage"}
    downloaded = c.download_artifacts(versions[1].run_id, "lineage/trained.json", str(servers["root"] / "dl"))
    assert json.loads(Path(downloaded).read_text())["run_id"] == versions[1].run_id
    # ...and nothing was recorded on the client's disk.
    assert not (home / "mlflow.db").exists() and not (home / "artifacts").exists()

    # Prefect: both nightly flow runs completed on the server, with their stage sub-flows.
    api = servers["prefect"].api_url
    flows = {f["id"]: f["name"] for f in prefect_post(api, "/flows/filter", {})}
    runs = prefect_post(api, "/flow_runs/filter", {})
    completed = [flows[r["flow_id"]] for r in runs if r["state_type"] == "COMPLETED"]
    assert completed.count("nightly") == 2
    assert {"train", "promote"} <= set(completed)


@pytest.mark.slow
def test_refused_registration_leaves_no_empty_model(servers, two_nightlies, monkeypatch):
    """The server checks a version's source against the run it names; a refusal undoes the new model."""
    from mlflow.exceptions import MlflowException

    from registry.promotion import register_candidate

    c = server_client(servers["mlflow"].url)
    v1, v2 = (c.get_model_version(MODEL, n) for n in ("1", "2"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers["mlflow"].url)
    with pytest.raises(MlflowException, match="Invalid model version source"):
        # v1's adapter folder, claimed for v2's run: not inside that run's artifacts.
        register_candidate("team-refused", v1.source, v2.run_id, {})
    assert [m.name for m in c.search_registered_models("name = 'team-refused'")] == []


@pytest.mark.slow
def test_stopping_the_mlflow_server_mid_training_is_one_clear_error(postgres, servers, tiny_overrides, tmp_path):
    """The server goes away during SFT: bounded retries, then one line naming MLFLOW_TRACKING_URI."""
    with mlflow_server(postgres.url("mlflow_stop", "psycopg"), tmp_path / "artifacts") as ml:
        env = cli_env(tmp_path / "home", ml.url, servers["prefect"].api_url)
        # 5000 SFT steps, logged every 100: the server stops after the first log, long before the end.
        sets = [
            a
            for o in tiny_overrides + ["registry.model_name=stopped", "train.sft.max_steps=5000"]
            for a in ("--set", o)
        ]
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmops.cli", "nightly", *sets],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[tuple[float, str]] = []  # stderr with arrival times, for the figures printed below
        out: list[str] = []
        readers = [
            threading.Thread(target=lambda: lines.extend((time.monotonic(), ln) for ln in proc.stderr)),
            threading.Thread(target=lambda: out.extend(proc.stdout)),
        ]
        for reader in readers:
            reader.start()
        try:
            c = server_client(ml.url)
            deadline = time.monotonic() + 900  # a hang guard, not a measurement
            while not _training_has_logged(c):
                assert proc.poll() is None, "".join(ln for _, ln in lines)[-4000:]
                assert time.monotonic() < deadline, "training never logged a step"
                time.sleep(1)
            ml.stop()
            stopped_at = time.monotonic()
            proc.wait(timeout=900)
            ended_at = time.monotonic()
            for reader in readers:
                reader.join(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr, stdout = "".join(ln for _, ln in lines), "".join(out)
    first_failure = next((t for t, ln in lines if "Retrying (" in ln or "Connection refused" in ln), stopped_at)
    (tmp_path / "stderr.txt").write_text(stderr)
    print(
        f"\nnightly exited {ended_at - stopped_at:.1f} s after the server stopped, {ended_at - first_failure:.1f} s "
        f"after its first failed request; {stderr.count('Traceback')} tracebacks logged ({tmp_path / 'stderr.txt'})"
    )
    assert proc.returncode == 2, stderr[-4000:]
    errors = error_lines(stderr)
    assert len(errors) == 1 and errors[0].startswith(
        f"{ERROR_PREFIX}{ml.url}: the MLflow server refused the connection"
    )
    assert stderr.rstrip().splitlines()[-1] == errors[0]
    assert "== nightly finished ==" not in stdout


def _training_has_logged(c) -> bool:
    experiment = c.get_experiment_by_name("llmops")
    if experiment is None:
        return False
    runs = c.search_runs([experiment.experiment_id], "tags.`llmops.stage` = 'train'")
    return any(c.get_metric_history(r.info.run_id, "sft/loss") for r in runs)


@pytest.mark.slow
def test_mlflow_behind_basic_auth_asks_for_a_login_and_accepts_an_account(postgres, tmp_path):
    """The compose set-up: basic-auth app, accounts in PostgreSQL, the worker's account made by
    infra/mlflow_user.py, every account allowed to edit a shared experiment."""
    from mlflow import MlflowClient

    ini = tmp_path / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = EDIT\n"
        f"database_uri = {postgres.url('mlflow_auth', 'psycopg')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "admin-" + os.urandom(8).hex()}
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin["MLFLOW_TRACKING_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
    }
    with mlflow_server(
        postgres.url("mlflow_login", "psycopg"),
        tmp_path / "artifacts",
        extra_args=("--app-name", "basic-auth"),
        env=server_env,
    ) as ml:
        anonymous = llmops(["models"], cli_env(tmp_path / "home", ml.url), timeout_s=300)
        assert anonymous.returncode == 2
        assert error_lines(anonymous.stderr) == [
            f"{ERROR_PREFIX}{ml.url}: the MLflow server asks for a login (HTTP 401); set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD to your account on it"
        ]

        worker = {"MLFLOW_TRACKING_USERNAME": "prefect-worker", "MLFLOW_TRACKING_PASSWORD": os.urandom(12).hex()}
        made = subprocess.run(
            [sys.executable, str(ROOT / "infra" / "mlflow_user.py"), "prefect-worker"],
            env={
                **cli_env(tmp_path / "home", ml.url, **admin),
                "NEW_USER_PASSWORD": worker["MLFLOW_TRACKING_PASSWORD"],
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0 and "created" in made.stdout, made.stderr[-2000:]
        again = subprocess.run(
            [sys.executable, str(ROOT / "infra" / "mlflow_user.py"), "prefect-worker"],
            env={**cli_env(tmp_path / "home", ml.url, **admin), "NEW_USER_PASSWORD": "ignored"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0 and "exists" in again.stdout, again.stderr[-2000:]

        # A person creates the team's experiment; the worker's account may still write to it.
        os.environ.update(admin)
        try:
            MlflowClient(tracking_uri=ml.url).create_experiment("llmops")
        finally:
            for key in admin:
                os.environ.pop(key, None)
        sets = [
            a
            for o in [
                "data.demo_train_rows=40",
                "data.demo_pref_rows=8",
                "data.demo_eval_rows=8",
                "curate.steps=[validate,exact_dedup]",
            ]
            for a in ("--set", o)
        ]
        curated = llmops(["curate", *sets], cli_env(tmp_path / "home", ml.url, **worker), timeout_s=600)
        assert curated.returncode == 0, curated.stderr[-4000:]
        wrong = llmops(
            ["models"],
            cli_env(
                tmp_path / "home", ml.url, MLFLOW_TRACKING_USERNAME="prefect-worker", MLFLOW_TRACKING_PASSWORD="wrong"
            ),
            timeout_s=300,
        )
        assert wrong.returncode == 2 and "asks for a login (HTTP 401)" in wrong.stderr
