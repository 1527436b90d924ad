"""The audit log of every registry decision: who or what, when, why, on which evidence.

Kept in MLflow itself, so it lives wherever the registry lives: one run per registered model in
the experiment `llmops-audit`, holding `audit.jsonl`. Each decision is also written as tags on
the model version it concerns.
"""

from __future__ import annotations

import getpass
import json
import time
from typing import Any

from registry.tracking import client, ensure_experiment

AUDIT_EXPERIMENT = "llmops-audit"


def _audit_run_id(model_name: str, create: bool = True) -> str | None:
    """The model's audit run; created on the first write, never by a read (None when there is none)."""
    c = client()
    if create:
        exp = ensure_experiment(AUDIT_EXPERIMENT)
    else:
        found = c.get_experiment_by_name(AUDIT_EXPERIMENT)
        if found is None:
            return None
        exp = found.experiment_id
    found = c.search_runs([exp], f"tags.`llmops.audit_model` = '{model_name}'", max_results=1)
    if found:
        return found[0].info.run_id
    if not create:
        return None
    run = c.create_run(exp, run_name=f"audit-{model_name}", tags={"llmops.audit_model": model_name})
    c.set_terminated(run.info.run_id)
    return run.info.run_id


def actor() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "user:unknown"


def read_audit(model_name: str) -> list[dict[str, Any]]:
    """Every decision so far. A store that cannot be read raises: an empty answer here would be
    written back and erase the history."""
    import mlflow

    run_id = _audit_run_id(model_name, create=False)
    if run_id is None or "audit.jsonl" not in {a.path for a in client().list_artifacts(run_id)}:
        return []
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/audit.jsonl")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def record_decision(
    model_name: str,
    version: int | None,
    action: str,
    by: str,
    why: str,
    evidence_run_id: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model_name,
        "version": version,
        "action": action,
        "by": by,
        "why": why,
        "evidence_run_id": evidence_run_id,
        "metrics": metrics or {},
    }
    _write(model_name, read_audit(model_name) + [entry])
    return entry


def remove_decision(model_name: str, entry: dict[str, Any]) -> None:
    """Takes back an entry whose decision was undone (registry/promotion.py), so the log tells no untruth."""
    entries = read_audit(model_name)
    for i in range(len(entries) - 1, -1, -1):
        if entries[i] == entry:
            del entries[i]
            break
    _write(model_name, entries)


def _write(model_name: str, entries: list[dict[str, Any]]) -> None:
    client().log_text(_audit_run_id(model_name), "".join(json.dumps(e) + "\n" for e in entries), "audit.jsonl")
