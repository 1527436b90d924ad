"""infra/: the files a team runs the platform from, checked against each other and against flows/.

Nothing here starts a container or a server. The checks are the mistakes that otherwise show up
only on deploy day: a `depends_on` naming a missing service, a `${VAR}` that .env.example
lacks, a deployment entrypoint that no longer matches a flow function, a parameter the flow
does not take, a config that RunConfig refuses, a cron string the server rejects. Flows are read
with `ast`, never imported, so this file stays fast.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from configs.schema import RunConfig

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yaml"
PREFECT_FILE = INFRA / "prefect.yaml"
ACCELERATE_DIR = INFRA / "accelerate"

SERVICES = {"postgres", "minio", "minio-init", "mlflow", "mlflow-init", "prefect-server", "prefect-worker"}
DEPLOYMENTS = {
    "nightly",
    "curate",
    "train",
    "evaluate",
    "promote",
    "prompt",
    "monitor",
    "drift",
    "nightly-gpu",
    "train-gpu",
}
GPU_POOL_TEMPLATE = INFRA / "prefect-gpu-pool.json"
POOLS = {"llmops-cpu", "llmops-gpu"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# `$$` is compose's escape for a literal `$` (expanded later by the container's shell).
COMPOSE_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


def _load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _env_example() -> dict[str, str]:
    env: dict[str, str] = {}
    for n, line in enumerate((INFRA / ".env.example").read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f".env.example:{n}: not KEY=VALUE: {line!r}"
        assert key not in env, f".env.example:{n}: {key} is defined twice"
        env[key] = value
    return env


def _compose_vars() -> set[str]:
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return {braced or bare for braced, bare in COMPOSE_VAR.findall(text)}


def _pinned(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return next(d.split("==", 1)[1] for d in deps if d.split("==", 1)[0].lower() == package)


# -- every YAML file ---------------------------------------------------------------------------

INFRA_YAMLS = sorted(p for p in INFRA.rglob("*") if p.suffix in {".yaml", ".yml"})


def test_infra_has_the_expected_yaml_files() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in INFRA_YAMLS}
    assert {
        "docker-compose.yaml",
        "prefect.yaml",
        "accelerate/multi_gpu.yaml",
        "accelerate/deepspeed_zero2.yaml",
    } <= names


@pytest.mark.parametrize("path", INFRA_YAMLS, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_yaml_loads_and_starts_with_its_run_command(path: Path) -> None:
    assert isinstance(_load(path), dict), f"{path.name} does not hold a mapping"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# Run"), f"{path.name}: the first line should be a '# Run: ...' comment giving its command"


# -- docker-compose.yaml -----------------------------------------------------------------------


def test_compose_services_and_depends_on() -> None:
    services = _load(COMPOSE_FILE)["services"]
    assert SERVICES <= set(services), f"missing services: {SERVICES - set(services)}"
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in deps.items():
            assert dep in services, f"{name}: depends_on names undefined service {dep!r}"
            assert dep != name, f"{name} depends on itself"
            condition = spec.get("condition", "service_started")
            assert condition in DEPENDS_CONDITIONS, f"{name} -> {dep}: unknown condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", f"{dep} is awaited as a one-shot but restarts"


def test_compose_has_no_dependency_cycle() -> None:
    services = _load(COMPOSE_FILE)["services"]
    graph = {n: set(s.get("depends_on") or {}) for n, s in services.items()}
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"depends_on cycle: {' -> '.join(path + (node,))}"
        if node not in done and node in graph:  # an undefined name is reported by the test above
            for dep in graph[node]:
                visit(dep, path + (node,))
            done.add(node)

    for node in graph:
        visit(node, ())


def test_compose_long_running_services_have_healthchecks() -> None:
    services = _load(COMPOSE_FILE)["services"]
    for name, svc in services.items():
        if svc.get("restart", "no") != "no":
            assert "healthcheck" in svc, f"{name} runs continuously but has no healthcheck"


def test_compose_volumes_declared_used_and_bind_paths_exist() -> None:
    compose = _load(COMPOSE_FILE)
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            source = vol["source"] if isinstance(vol, dict) else vol.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                assert (INFRA / source).exists(), f"{name}: bind mount {source} does not exist (relative to infra/)"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared under top-level volumes"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"
    for stateful in ("postgres", "minio", "prefect-server"):
        mounts = compose["services"][stateful].get("volumes", [])
        assert any(str(m).split(":", 1)[0] in declared for m in mounts), (
            f"{stateful} keeps its state in no named volume"
        )


def test_compose_variables_match_env_example() -> None:
    used, defined = _compose_vars(), set(_env_example())
    assert used - defined == set(), (
        f"used by docker-compose.yaml but missing from .env.example: {sorted(used - defined)}"
    )
    assert defined - used == set(), f"in .env.example but unused by docker-compose.yaml: {sorted(defined - used)}"


# -- safe defaults ------------------------------------------------------------------------------

SECRETS = {
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "MLFLOW_S3_SECRET_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_SECRET_KEY",
    "MLFLOW_WORKER_PASSWORD",
    "PREFECT_AUTH_STRING",
}


def _compose_text() -> str:
    return "\n".join(
        line for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")
    )


def test_every_published_port_binds_to_the_bind_address_defaulting_to_localhost() -> None:
    services = _load(COMPOSE_FILE)["services"]
    published = 0
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert isinstance(port, str), f"{name}: write ports as 'ADDRESS:HOST:CONTAINER' strings"
            published += 1
            # Three parts: an address first. A bare 'HOST:CONTAINER' publishes on every interface.
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:") and port.count(":") == 3, (
                f"{name}: {port!r} does not bind to ${{BIND_ADDRESS:-127.0.0.1}}"
            )
    assert published >= 5
    assert _env_example()["BIND_ADDRESS"] == "127.0.0.1"


def test_every_secret_is_required_and_empty_in_the_example() -> None:
    text, env = _compose_text(), _env_example()
    assert SECRETS <= set(env), f"secrets missing from .env.example: {SECRETS - set(env)}"
    for var in SECRETS:
        uses = re.findall(r"\$\{" + var + r"(\W[^}]*)?\}", text)
        assert uses, f"{var} is not used by docker-compose.yaml"
        # `:?` refuses to start when the variable is unset or empty; `?` alone lets an empty one through.
        assert all(u.startswith(":?") for u in uses), f"{var}: every use must be ${{{var}:?message}}"
        assert env[var] == "", f".env.example gives {var} a value; leave it empty so a copy cannot start as is"
    for key, value in env.items():
        assert "change-me" not in value.lower() and "password" not in value.lower(), (
            f"{key}={value} looks like a default secret"
        )


def test_no_service_accepts_every_host_or_origin() -> None:
    text = _compose_text()
    assert not re.search(r"--allowed-hosts\s+['\"]?\*", text)
    assert "--cors-allowed-origins" not in text or not re.search(r"--cors-allowed-origins\s+['\"]?\*", text)
    mlflow = _load(COMPOSE_FILE)["services"]["mlflow"]
    script = " ".join(mlflow["command"])
    assert "--allowed-hosts" in script
    assert "*" not in mlflow["environment"]["ALLOWED_HOSTS"].split(",")
    assert all(h.strip() not in {"*", ""} for h in _env_example()["MLFLOW_ALLOWED_HOSTS"].split(","))


def test_servers_ask_for_logins() -> None:
    services = _load(COMPOSE_FILE)["services"]
    mlflow = services["mlflow"]
    assert "--app-name basic-auth" in " ".join(mlflow["command"])
    for var in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_CONFIG_PATH"):
        assert var in mlflow["environment"], var
    assert "PREFECT_SERVER_API_AUTH_STRING" in services["prefect-server"]["environment"]
    worker = services["prefect-worker"]["environment"]
    assert {"PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(worker)
    # The worker logs in with its own account, not the admin's.
    assert worker["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_WORKER_USER}"
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_USERNAME"] == "${MLFLOW_ADMIN_USER}"
    assert _env_example()["MLFLOW_WORKER_USER"] != _env_example()["MLFLOW_ADMIN_USER"]
    assert services["mlflow-init"]["volumes"][0].split(":")[0] == "./mlflow_user.py"
    # The health checks stay open (both servers exempt them from auth), so compose can probe them.
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    for phrase in ("basic-auth", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert phrase in readme, f"infra/README.md does not document {phrase}"


def test_mlflow_reaches_the_bucket_with_its_own_bucket_only_key() -> None:
    import json

    services = _load(COMPOSE_FILE)["services"]
    env = services["mlflow"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == "${MLFLOW_S3_ACCESS_KEY}"
    assert "MINIO_ROOT" not in env["AWS_SECRET_ACCESS_KEY"]
    assert not any("MINIO_ROOT" in str(v) for v in env.values())
    policy = json.loads((INFRA / "minio-mlflow-policy.json").read_text(encoding="utf-8"))
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::MLFLOW_BUCKET", "arn:aws:s3:::MLFLOW_BUCKET/*"}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions)
    assert not {"s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy"} & actions
    init = " ".join(services["minio-init"]["command"])
    assert "mc admin user add" in init and "mc admin policy attach" in init


def test_database_urls_use_the_server_extras_drivers() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    drivers = {d.split("==")[0].split("[")[0] for d in extras["server"]}
    assert {"psycopg", "asyncpg"} <= drivers
    text = _compose_text()
    used = set(re.findall(r"postgresql\+(\w+)://", text))
    assert used == {"psycopg", "asyncpg"}, used
    pins = {d.split("==")[0]: d.split("==")[1] for d in extras["server"]}
    # The MLflow image installs the same pins (Flask-WTF: the basic-auth app).
    assert f'"psycopg[binary]=={pins["psycopg[binary]"]}"' in text and f'"Flask-WTF=={pins["Flask-WTF"]}"' in text


def test_compose_images_match_pinned_versions() -> None:
    services = _load(COMPOSE_FILE)["services"]
    assert services["mlflow"]["image"].endswith(f":v{_pinned('mlflow')}")
    for name in ("prefect-server", "prefect-worker"):
        assert services[name]["image"].startswith(f"prefecthq/prefect:{_pinned('prefect')}-"), name
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "15"


def test_postgres_databases_are_created_and_distinct_from_the_maintenance_db() -> None:
    created = set(re.findall(r"CREATE DATABASE\s+(\w+)", (INFRA / "postgres-init.sql").read_text(), re.I))
    assert {"mlflow", "mlflow_auth", "prefect"} <= created
    # The image creates POSTGRES_DB itself; a second CREATE of the same name fails the init script.
    assert _env_example()["POSTGRES_DB"] not in created
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for url_db in re.findall(r"postgresql\+\w+://\S+?@postgres:5432/(\w+)", text):
        assert url_db in created, f"a connection URL names database {url_db!r}, which postgres-init.sql does not create"
    services = _load(COMPOSE_FILE)["services"]
    assert "asyncpg" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]


def test_mlflow_schema_is_created_before_the_server_starts() -> None:
    script = " ".join(_load(COMPOSE_FILE)["services"]["mlflow"]["command"])
    assert "mlflow db upgrade" in script and "mlflow server" in script
    assert script.index("mlflow db upgrade") < script.index("mlflow server")


def test_compose_worker_polls_a_pool_that_deployments_use() -> None:
    worker = " ".join(_load(COMPOSE_FILE)["services"]["prefect-worker"]["command"])
    pool = re.search(r"--pool\s+(\S+)", worker).group(1)
    pools = {d["work_pool"]["name"] for d in _load(PREFECT_FILE)["deployments"]}
    assert pool in pools


def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and subprocess.run(cmd + ["version"], capture_output=True, timeout=10).returncode == 0:
            return cmd
    return None


def _compose_config(env_file: Path) -> subprocess.CompletedProcess:
    """`config -q` on the compose file. docker-compose 1.x predates the compose spec's top-level
    `name:`, so it reads the file without that line, from stdin, with infra/ as project folder."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI here")
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    version = subprocess.run(cli + ["version"], capture_output=True, text=True, timeout=10).stdout
    if cli == ["docker-compose"] and re.search(r"version 1\.", version):
        args = ["-f", "-", "--project-directory", str(INFRA)]
        text = "\n".join(line for line in text.splitlines() if not line.startswith("name:"))
    else:
        args, text = ["-f", str(COMPOSE_FILE)], None
    result = subprocess.run(
        cli + args + ["--env-file", str(env_file), "config", "-q"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode and "docker daemon" in result.stderr.lower():
        pytest.skip("docker compose needs an engine here")
    return result


def test_docker_compose_config_accepts_the_file_once_secrets_are_set(tmp_path) -> None:
    env = _env_example() | {var: f"secret-{n}-{var.lower()}" for n, var in enumerate(sorted(SECRETS))}
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_the_example_as_it_is() -> None:
    result = _compose_config(INFRA / ".env.example")
    assert result.returncode != 0
    assert re.search(r"set \w+ in infra/\.env", result.stderr), result.stderr


# -- prefect.yaml ------------------------------------------------------------------------------


def _flow_function(entrypoint: str) -> ast.FunctionDef:
    # A module path (`flows.evaluate.evaluate_flow`), imported from the repository root.
    module, _, name = entrypoint.rpartition(".")
    path = module.replace(".", "/") + ".py"
    assert ":" not in entrypoint and not entrypoint.endswith(".py"), f"entrypoint {entrypoint}: give a module path"
    source = ROOT / path
    assert source.is_file(), f"entrypoint {entrypoint}: {path} does not exist"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert name in funcs, f"entrypoint {entrypoint}: no top-level function {name} in {path}"
    func = funcs[name]
    decorators = [d.func if isinstance(d, ast.Call) else d for d in func.decorator_list]
    assert any(getattr(d, "id", getattr(d, "attr", None)) == "flow" for d in decorators), f"{entrypoint} is not a @flow"
    return func


def _deployments() -> dict[str, dict]:
    deployments = _load(PREFECT_FILE)["deployments"]
    names = [d["name"] for d in deployments]
    assert len(names) == len(set(names)), f"duplicate deployment names: {names}"
    return {d["name"]: d for d in deployments}


def _constant(path: Path, name: str):
    """A top-level constant of a flows/ file (`NIGHTLY_CRON = "0 2 * * *"`), read without importing it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.relative_to(ROOT)} defines no {name}")


DEPLOY_PY = ROOT / "flows" / "deploy.py"


def test_prefect_yaml_has_the_deployments_on_known_pools() -> None:
    deployments = _deployments()
    assert set(deployments) == DEPLOYMENTS
    for name, dep in deployments.items():
        assert dep["work_pool"]["name"] in POOLS, f"{name}: unknown pool {dep['work_pool']['name']}"
        assert "LLMOPS_HOME" in dep["work_pool"]["job_variables"]["env"], name
    assert deployments["nightly-gpu"]["work_pool"]["name"] == "llmops-gpu"
    assert deployments["train-gpu"]["work_pool"]["name"] == "llmops-gpu"
    assert deployments["train-gpu"]["entrypoint"] == "flows.train.train_flow"
    # Every flow `llmops serve` and `llmops worker` deploy, on the CPU pool, with the same description.
    on_cpu = {name: dep for name, dep in deployments.items() if dep["work_pool"]["name"] == "llmops-cpu"}
    described = _constant(DEPLOY_PY, "DESCRIPTIONS")
    assert set(on_cpu) == set(described)
    forms = _constant(ROOT / "flows" / "forms.py", "SECTIONS")  # the stages whose form holds only their sections
    for name, text in described.items():
        assert on_cpu[name]["description"] == text, name
        expected = f"flows.forms.{name}_form" if name in forms else f"flows.{name}.{name}_flow"
        assert on_cpu[name]["entrypoint"] == expected, name
    assert on_cpu["nightly"].get("concurrency_limit") == _constant(DEPLOY_PY, "CONCURRENCY")["nightly"] == 1


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_entrypoint_and_parameters_match_the_flow(name: str) -> None:
    dep = _deployments()[name]
    func = _flow_function(dep["entrypoint"])
    args = func.args.args + func.args.kwonlyargs
    accepted = {a.arg for a in args}
    given = set(dep.get("parameters") or {})
    assert given <= accepted, f"{name}: parameters {sorted(given - accepted)} are not arguments of {func.name}"
    # A schedule starts a run with the deployment's parameters only: every argument needs a default.
    defaults = func.args.defaults + [d for d in func.args.kw_defaults if d is not None]
    assert len(defaults) == len(args), f"{name}: every argument of {func.name} needs a default"
    if "config" in given:
        RunConfig.model_validate(dep["parameters"]["config"])


def test_gpu_pool_deployments_set_only_variables_its_template_has() -> None:
    """A job variable the pool's template lacks is refused by `prefect deploy`; gpus_per_run must be one."""
    import json

    template = json.loads(GPU_POOL_TEMPLATE.read_text(encoding="utf-8"))
    variables = template["variables"]["properties"]
    assert variables["gpus_per_run"]["type"] == "integer" and variables["gpus_per_run"]["minimum"] == 1
    assert template["job_configuration"]["env"] == {"LLMOPS_GPUS_PER_RUN": "{{ gpus_per_run }}"}
    on_gpu = {n: d for n, d in _deployments().items() if d["work_pool"]["name"] == "llmops-gpu"}
    assert set(on_gpu) == {"nightly-gpu", "train-gpu"}
    for name, dep in on_gpu.items():
        assert set(dep["work_pool"]["job_variables"]) <= set(variables), name
    assert on_gpu["train-gpu"]["work_pool"]["job_variables"]["gpus_per_run"] == 2
    assert f"--base-job-template {GPU_POOL_TEMPLATE.relative_to(ROOT)}" in PREFECT_FILE.read_text(encoding="utf-8")


def test_deploy_time_templating_keeps_every_deployment_as_written() -> None:
    """`prefect deploy` fills each `{{ name }}` in prefect.yaml from its build steps' outputs and
    empties one it has no value for: a prompt template's `{{question}}` must come through."""
    from prefect.utilities.templating import apply_values

    from flows.deploy import keep_prompt_placeholders

    assert {"flows.deploy.keep_prompt_placeholders": {}} in _load(PREFECT_FILE)["build"]
    for name, dep in _deployments().items():
        assert apply_values(dep, keep_prompt_placeholders()) == dep, name
    # Without the step, the GPU nightly would start every run with a template its config check refuses.
    assert apply_values(_deployments()["nightly-gpu"], {})["parameters"]["config"]["prompt"]["template"] == "Solve: "


def test_nightly_gpu_config_equals_its_config_file() -> None:
    inline = _deployments()["nightly-gpu"]["parameters"]["config"]
    assert inline == _load(ROOT / "configs" / "gpu" / "qwen2.5-0.5b-lora.yaml")


def test_prefect_yaml_pull_step_sets_the_working_directory() -> None:
    pull = _load(PREFECT_FILE)["pull"]
    assert all(isinstance(step, dict) and len(step) == 1 for step in pull)
    steps = {next(iter(step)) for step in pull}
    assert "prefect.deployments.steps.set_working_directory" in steps


CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
CRON_NAMES = [
    {},
    {},
    {},
    {
        m: i
        for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
    },
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
]


def _cron_problems(expr: str) -> list[str]:
    fields = expr.split()
    if len(fields) != 5:
        return [f"{expr!r} has {len(fields)} fields, not 5"]
    problems = []
    for field, (lo, hi), names in zip(fields, CRON_RANGES, CRON_NAMES):
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                problems.append(f"bad step in {part!r}")
            if base == "*":
                continue
            for value in base.split("-", 1):
                number = names.get(value.lower(), int(value) if value.isdigit() else None)
                if number is None or not lo <= number <= hi:
                    problems.append(f"{value!r} outside {lo}-{hi} in {field!r}")
    return problems


def test_cron_checker_catches_bad_strings() -> None:
    assert _cron_problems("0 2 * * *") == [] and _cron_problems("*/15 0-6 1,15 jan-mar mon") == []
    assert _cron_problems("0 2 * *") and _cron_problems("0 25 * * *") and _cron_problems("0 2 * * 8")


def test_schedules_are_valid_cron_in_a_real_timezone() -> None:
    seen = 0
    for name, dep in _deployments().items():
        for schedule in dep.get("schedules") or []:
            seen += 1
            assert _cron_problems(schedule["cron"]) == [], f"{name}: {_cron_problems(schedule['cron'])}"
            ZoneInfo(schedule.get("timezone", "UTC"))
    assert seen
    nightly = _deployments()["nightly"]["schedules"][0]
    assert (nightly["cron"], nightly["timezone"], nightly.get("active", True)) == ("0 2 * * *", "UTC", True)


def test_schedules_agree_with_the_serve_and_worker_commands() -> None:
    schedules = {
        name: [s["cron"] for s in dep.get("schedules") or []]
        for name, dep in _deployments().items()
        if dep["work_pool"]["name"] == "llmops-cpu"
    }
    expected = {
        "nightly": [_constant(DEPLOY_PY, "NIGHTLY_CRON")],
        "monitor": [_constant(DEPLOY_PY, "MONITOR_CRON")],
        "drift": [_constant(DEPLOY_PY, "DRIFT_CRON")],
    }
    assert schedules == {name: expected.get(name, []) for name in schedules}


# -- accelerate --------------------------------------------------------------------------------

ACCELERATE_FILES = sorted(ACCELERATE_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=lambda p: p.name)
def test_accelerate_config_is_multi_process(path: Path) -> None:
    cfg = _load(path)
    assert cfg["num_processes"] >= 2, f"{path.name}: a multi-GPU launch needs num_processes >= 2"
    assert cfg["distributed_type"] in {"MULTI_GPU", "DEEPSPEED", "FSDP"}
    assert cfg["mixed_precision"] in {"no", "fp16", "bf16"}
    assert cfg.get("use_cpu", False) is False
    if cfg["distributed_type"] == "DEEPSPEED":
        assert cfg["deepspeed_config"]["zero_stage"] in {0, 1, 2, 3}


def test_accelerate_variants() -> None:
    assert _load(ACCELERATE_DIR / "multi_gpu.yaml")["distributed_type"] == "MULTI_GPU"
    ds = _load(ACCELERATE_DIR / "deepspeed_zero2.yaml")
    assert ds["distributed_type"] == "DEEPSPEED" and ds["deepspeed_config"]["zero_stage"] == 2


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=lambda p: p.name)
def test_accelerate_launch_comment_names_existing_files(path: Path) -> None:
    command = path.read_text(encoding="utf-8").splitlines()[0]
    assert re.search(r"--config_file\s+(\S+)", command).group(1) == path.relative_to(ROOT).as_posix()
    run_config = re.search(r"\s--config\s+(\S+)", command).group(1)
    assert (ROOT / run_config).is_file(), f"{path.name}: {run_config} does not exist"
    assert "-m llmops.cli" in command
