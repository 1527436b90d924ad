"""`tasks/` is a plain library: no Prefect, no MLflow, so it runs on a bare GPU machine beside the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"^\s*(?:from|import)\s+(prefect|mlflow|registry|flows)\b", re.M)


def test_no_prefect_or_mlflow_import_in_tasks():
    offenders = [f"{path.relative_to(ROOT)}: {m.group(0).strip()}"
                 for path in sorted((ROOT / "tasks").rglob("*.py"))
                 for m in FORBIDDEN.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_importing_every_task_module_loads_neither():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "tasks").rglob("*.py")
                     if "metrics" not in p.parts and "harness_tasks" not in p.parts)
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in ('prefect', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
