"""An MLflow server that cannot be used: one line that says so, and no second wait for it.

MLflow reports a server that is gone, after its retries, as an exception whose text is a long URL
and a urllib3 repr. `server_failure` turns it into a `UserError` naming MLFLOW_TRACKING_URI, what
happened and what to check. `GuardedClient` raises that error from every client call, so that a caller
treating MlflowException as "not found" cannot read a server that is down as an empty registry; and
right after a failure, cleanup makes one quick try instead of waiting through the retries again.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Iterator

from core.errors import UserError

# When a tracking server last failed every retry (time.monotonic()). Cleanup after that failure
# (marking runs FAILED) makes one quick try instead of waiting through the same retries again.
_server_down_at: float | None = None
DOWN_FOR_S = 120.0


def server_failure(exc: BaseException) -> UserError | None:
    """The UserError for a tracking server that could not be used, or None for any other error.

    MLflow reports a server that is gone, after its retries, as an MlflowException whose context
    holds the requests error; its text is a long URL and a urllib3 repr. This names
    MLFLOW_TRACKING_URI, what happened and what to check instead.
    """
    import requests

    global _server_down_at
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    subject = f"MLFLOW_TRACKING_URI={uri}"
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(e) for e in seen)
    if isinstance(seen[0], UserError):
        return None
    if any(isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in DB_DRIVERS for e in seen):
        missing = next(e.name for e in seen if isinstance(e, ModuleNotFoundError))
        return UserError(
            subject,
            f"the database driver {missing!r} is not installed",
            "install the server extra (pip install 'llmops[server]'), or point MLFLOW_TRACKING_URI "
            "at the team's MLflow server (http://HOST:5000) rather than at its database",
        )
    for e in seen:
        if isinstance(
            e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError)
        ):
            _server_down_at = time.monotonic()
            return UserError(
                subject,
                f"the MLflow server {_failure_kind(e, text)} ({_retry_summary()})",
                f"check that it is running and reachable from this machine (curl {uri}/health), then run "
                "the command again (MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT set "
                "how long to wait)",
            )
    status = re.search(r"failed with error code (401|403) != 200", text)
    if status and status.group(1) == "401":
        return UserError(
            subject,
            "the MLflow server asks for a login (HTTP 401)",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to your account on it",
        )
    if status and "DNS rebinding" in text:
        return UserError(
            subject,
            "the MLflow server refuses the host name in this address (HTTP 403, Host header)",
            "add that host name to the server's --allowed-hosts, or use a name it already allows",
        )
    if status:
        return UserError(
            subject,
            "the MLflow server denied this request (HTTP 403)",
            "ask its administrator for permission on this experiment or model",
        )
    return None


DB_DRIVERS = {"psycopg", "psycopg2", "asyncpg", "pymysql", "MySQLdb"}


def _failure_kind(exc: BaseException, text: str) -> str:
    import requests

    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in text.lower():
        return f"did not answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '120')} s"
    if isinstance(exc, requests.exceptions.RetryError) or "too many" in text and "error responses" in text:
        return "kept answering with server errors (5xx)"
    if "Connection refused" in text:
        return "refused the connection"
    if "Name or service not known" in text or "NameResolutionError" in text:
        return "host name could not be resolved"
    return "could not be reached"


def _retry_summary() -> str:
    retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7"))
    factor = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2"))
    waited = factor * (2**retries - 2) if retries > 1 else 0
    return f"{retries} retries over about {waited:.0f} s"


def server_recently_down() -> bool:
    return _server_down_at is not None and time.monotonic() - _server_down_at < DOWN_FOR_S


@contextlib.contextmanager
def _quick_while_down() -> Iterator[None]:
    """Right after a server failure, one request with no retries and a short timeout.

    MLflow reads its retry settings per request, so they are lowered around the call. Cleanup
    after the failure (closing runs, undoing a registration) then fails at once instead of
    waiting through the same retries again; if the server is back, it succeeds and clears the
    mark.
    """
    global _server_down_at
    if not server_recently_down():
        yield
        return
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    saved = {k: os.environ.get(k) for k in quick}
    os.environ.update(quick)
    try:
        yield
        _server_down_at = None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class GuardedClient:
    """MlflowClient whose calls raise `server_failure`'s UserError when the server cannot be used.

    Without it a caller that treats MlflowException as "not found" (no champion yet, no such
    model) would read a server that is down as an empty registry.
    """

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                with _quick_while_down():
                    return attr(*args, **kwargs)
            except Exception as exc:
                error = server_failure(exc)
                if error is None:
                    raise
                raise error from exc

        return call
