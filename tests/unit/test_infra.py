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

SERVICES = {"postgres", "minio", "minio-init", "mlflow", "prefect-server", "prefect-worker"}
DEPLOYMENTS = {"nightly", "curate", "train", "evaluate", "promote", "nightly-gpu"}
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
    assert {"docker-compose.yaml", "prefect.yaml", "accelerate/multi_gpu.yaml",
            "accelerate/deepspeed_zero2.yaml"} <= names


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
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
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
        assert any(str(m).split(":", 1)[0] in declared for m in mounts), f"{stateful} keeps its state in no named volume"


def test_compose_variables_match_env_example() -> None:
    used, defined = _compose_vars(), set(_env_example())
    assert used - defined == set(), f"used by docker-compose.yaml but missing from .env.example: {sorted(used - defined)}"
    assert defined - used == set(), f"in .env.example but unused by docker-compose.yaml: {sorted(defined - used)}"


def test_compose_images_match_pinned_versions() -> None:
    services = _load(COMPOSE_FILE)["services"]
    assert services["mlflow"]["image"].endswith(f":v{_pinned('mlflow')}")
    for name in ("prefect-server", "prefect-worker"):
        assert services[name]["image"].startswith(f"prefecthq/prefect:{_pinned('prefect')}-"), name
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "15"


def test_postgres_databases_are_created_and_distinct_from_the_maintenance_db() -> None:
    created = set(re.findall(r"CREATE DATABASE\s+(\w+)", (INFRA / "postgres-init.sql").read_text(), re.I))
    assert {"mlflow", "prefect"} <= created
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


def test_docker_compose_config_accepts_the_file() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI here")
    result = subprocess.run(cli + ["-f", str(COMPOSE_FILE), "--env-file", str(INFRA / ".env.example"), "config", "-q"],
                            capture_output=True, text=True, timeout=30)
    if result.returncode and "docker daemon" in result.stderr.lower():
        pytest.skip("docker compose needs an engine here")
    assert result.returncode == 0, result.stderr


# -- prefect.yaml ------------------------------------------------------------------------------

def _flow_function(entrypoint: str) -> ast.FunctionDef:
    path, _, name = entrypoint.partition(":")
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


def test_prefect_yaml_has_the_deployments_on_known_pools() -> None:
    deployments = _deployments()
    assert set(deployments) == DEPLOYMENTS
    for name, dep in deployments.items():
        assert dep["work_pool"]["name"] in POOLS, f"{name}: unknown pool {dep['work_pool']['name']}"
        assert "LLMOPS_HOME" in dep["work_pool"]["job_variables"]["env"], name
    assert deployments["nightly"]["work_pool"]["name"] == "llmops-cpu"
    assert deployments["nightly-gpu"]["work_pool"]["name"] == "llmops-gpu"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_entrypoint_and_parameters_match_the_flow(name: str) -> None:
    dep = _deployments()[name]
    func = _flow_function(dep["entrypoint"])
    args = func.args.args + func.args.kwonlyargs
    accepted = {a.arg for a in args}
    given = set(dep.get("parameters") or {})
    assert given <= accepted, f"{name}: parameters {sorted(given - accepted)} are not arguments of {func.name}"
    # `config: RunConfig` has no default, so a deployment without it cannot start a run.
    assert "config" in given, f"{name}: give `config` (an empty mapping means every default)"
    RunConfig.model_validate(dep["parameters"]["config"])


def test_nightly_gpu_config_equals_its_config_file() -> None:
    inline = _deployments()["nightly-gpu"]["parameters"]["config"]
    assert inline == _load(ROOT / "configs" / "gpu" / "qwen2.5-0.5b-lora.yaml")


def test_prefect_yaml_pull_step_sets_the_working_directory() -> None:
    pull = _load(PREFECT_FILE)["pull"]
    assert all(isinstance(step, dict) and len(step) == 1 for step in pull)
    steps = {next(iter(step)) for step in pull}
    assert "prefect.deployments.steps.set_working_directory" in steps


CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
CRON_NAMES = [{}, {}, {}, {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)},
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}]


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


def test_nightly_cron_agrees_with_the_serve_command() -> None:
    deploy = ROOT / "flows" / "deploy.py"
    if not deploy.is_file():
        pytest.skip("no flows/deploy.py")
    tree = ast.parse(deploy.read_text(encoding="utf-8"))
    crons = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
             and any(getattr(t, "id", "") == "NIGHTLY_CRON" for t in n.targets)]
    if not crons:
        pytest.skip("flows/deploy.py defines no NIGHTLY_CRON")
    assert _deployments()["nightly"]["schedules"][0]["cron"] == crons[0]


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
