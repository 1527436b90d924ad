"""Real servers for tests: a PostgreSQL cluster, an MLflow tracking server, a Prefect server.

Each is a context manager that starts the server as a child process on a free port of
127.0.0.1, waits (bounded) until its health check answers, yields a small handle, and at exit
stops the server and every process it started, even when the test failed. Nothing binds to
another interface, and nothing outlives the `with` block.

    from tests.servers import mlflow_server, postgres_cluster, prefect_server

    with postgres_cluster() as pg:                       # skips nothing: check postgres_bin() first
        with mlflow_server(pg.url("mlflow", "psycopg"), tmp_path / "artifacts") as ml, \\
             prefect_server(tmp_path / "prefect", pg.url("prefect", "asyncpg")) as pf:
            env = {**os.environ, "MLFLOW_TRACKING_URI": ml.url, "PREFECT_API_URL": pf.api_url}
            ...

`started(...)` is the building block: any command (a Prefect worker, say) run the same way,
with the same teardown. A handle's `stop()` stops its server early (to test a server that goes
away); stopping twice is harmless. `log` is the server's combined output, for failure messages.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Callable, Iterator

HOST = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent


class ServerError(RuntimeError):
    """A server did not come up in time, or exited while starting; the message holds its log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Process:
    """A started server: its process (the leader of its own process group) and its log file."""

    popen: subprocess.Popen
    log: Path
    name: str

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, grace_s: float = 20.0) -> None:
        """Signals the whole process group (servers fork workers), then kills what is left."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # Children may outlive their leader: the group is killed whatever the leader did.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


@contextlib.contextmanager
def started(
    cmd: list[str],
    *,
    name: str,
    log: Path,
    env: dict[str, str] | None = None,
    ready: Callable[[], bool] | None = None,
    timeout_s: float = 120.0,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Process]:
    """Runs `cmd` in its own process group; waits until `ready()` is true; stops the group at exit.

    Raises ServerError (with the log's tail) when the process exits or `ready` stays false for
    `timeout_s` seconds. Under load a Prefect or MLflow server took 10-30 s to answer.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            user=user,
        )
    proc = Process(popen, log, name)
    try:
        deadline = time.monotonic() + timeout_s
        while ready is not None and not ready():
            if not proc.alive():
                raise ServerError(f"{name} exited with code {popen.returncode} while starting:\n{proc.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerError(f"{name} did not answer within {timeout_s:.0f} s:\n{proc.log_tail()}")
            time.sleep(0.5)
        yield proc
    finally:
        proc.stop(stop_signal)


# -- PostgreSQL ---------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The folder holding initdb and postgres (Debian keeps them off PATH), or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


@dataclass
class Postgres:
    port: int
    user: str
    password: str
    bin: Path
    process: Process
    databases: list[str] = field(default_factory=list)

    def url(self, database: str, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL: driver `psycopg` (MLflow, psycopg 3) or `asyncpg` (Prefect)."""
        return f"postgresql+{driver}://{self.user}:{self.password}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run(
            [str(self.bin / "createdb"), "-h", HOST, "-p", str(self.port), "-U", self.user, name],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.databases.append(name)
        return name

    def stop(self) -> None:
        self.process.stop(signal.SIGINT)


@contextlib.contextmanager
def postgres_cluster(databases: tuple[str, ...] = (), timeout_s: float = 60.0) -> Iterator[Postgres]:
    """A private cluster in a temporary folder: password login over TCP on 127.0.0.1 only.

    initdb and postgres refuse to run as root, so as root they run as user `postgres`, in a
    folder that user owns. The folder is deleted at exit.
    """
    pg_bin = postgres_bin()
    if pg_bin is None:
        raise ServerError(
            "no PostgreSQL server binaries (initdb, postgres) on this machine; apt-get install postgresql"
        )
    run_as = "postgres" if os.geteuid() == 0 else None
    try:
        entry = pwd.getpwnam(run_as) if run_as else None
    except KeyError:
        raise ServerError("running as root, and there is no user `postgres` to run PostgreSQL as") from None
    root = Path(tempfile.mkdtemp(prefix="llmops-pg-"))
    try:
        if entry:
            os.chown(root, entry.pw_uid, entry.pw_gid)
        password = secrets.token_hex(12)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if entry:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        data = root / "data"
        init = subprocess.run(
            [
                str(pg_bin / "initdb"),
                "-D",
                str(data),
                "-U",
                "llmops",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            user=run_as,
        )
        if init.returncode:
            raise ServerError(f"initdb failed:\n{init.stderr[-2000:]}")
        port = free_port()
        cmd = [
            str(pg_bin / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            HOST,
            "-k",
            str(root),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=100",
        ]

        def ready() -> bool:
            check = [str(pg_bin / "pg_isready"), "-h", HOST, "-p", str(port)]
            return subprocess.run(check, capture_output=True).returncode == 0

        log = root / "postgres.log"
        with started(
            cmd, name="postgres", log=log, ready=ready, timeout_s=timeout_s, user=run_as, stop_signal=signal.SIGINT
        ) as proc:
            cluster = Postgres(port, "llmops", password, pg_bin, proc)
            for name in databases:
                cluster.create_database(name)
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- MLflow -------------------------------------------------------------------------------------


@dataclass
class MlflowServer:
    url: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


def mlflow_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"})
    return env


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str,
    artifacts_dir: Path,
    port: int | None = None,
    log: Path | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 180.0,
) -> Iterator[MlflowServer]:
    """`mlflow server` on `backend_uri`, proxying artifacts to `artifacts_dir` (runs get
    `mlflow-artifacts:` URIs, as with an object store). The schema is created first, by this one
    process: several server processes migrating a new database at once can corrupt it.
    `extra_args` and `env` add to the command line and the environment (`--app-name basic-auth`
    with MLFLOW_AUTH_CONFIG_PATH and MLFLOW_AUTH_ADMIN_* puts it behind logins).
    """
    mlflow = str(VENV_BIN / "mlflow")
    env = {**mlflow_env(), **(env or {})}
    subprocess.run([mlflow, "db", "upgrade", backend_uri], env=env, check=True, capture_output=True, timeout=300)
    port = port or free_port()
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{HOST}:{port}"
    cmd = [
        mlflow,
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        artifacts_dir.as_uri(),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        *extra_args,
    ]
    with started(
        cmd,
        name="mlflow server",
        log=log or artifacts_dir.parent / f"mlflow-{port}.log",
        env=env,
        ready=lambda: http_ok(f"{url}/health"),
        timeout_s=timeout_s,
    ) as proc:
        yield MlflowServer(url, proc)


# -- Prefect ------------------------------------------------------------------------------------


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    process: Process

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for a client or a worker of this server (its own PREFECT_HOME)."""
        env = dict(os.environ if base is None else base)
        env.update(
            {"PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true"}
        )
        return env

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def prefect_server(
    home: Path, database_url: str | None = None, port: int | None = None, ui: bool = False, timeout_s: float = 180.0
) -> Iterator[PrefectServer]:
    """`prefect server start` with PREFECT_HOME=`home` and, if given, a database URL
    (`postgresql+asyncpg://...`; default: SQLite in `home`). The server migrates its database
    on start. `ui=False` skips building the UI's static files, which only a browser needs.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ)
    for var in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        env.pop(var, None)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "true",
            "PREFECT_UI_ENABLED": "true" if ui else "false",
        }
    )
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    api_url = f"http://{HOST}:{port}/api"
    cmd = [str(VENV_BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(port)]
    with started(
        cmd,
        name="prefect server",
        log=home / f"server-{port}.log",
        env=env,
        ready=lambda: http_ok(f"{api_url}/health"),
        timeout_s=timeout_s,
    ) as proc:
        yield PrefectServer(api_url, home, proc)
