"""The house has floors, and imports only go down them.

    core -> configs -> tasks -> registry -> flows -> llmops (the CLI) -> bench

A module may import its own package and any package below it, never one above: the ground floor
(`core/`) imports nothing of the project, `configs/` owns every config model, `tasks/` is a plain
library with no Prefect or MLflow (so it runs on a bare GPU machine beside the code), and the CLI is
the only place that prints. Imports inside functions count too: a lazy import that points up is
still a cycle, only a slower one to find.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["core", "configs", "tasks", "registry", "flows", "llmops", "bench"]
# Third-party packages a floor may not import, anywhere in its files.
BARRED = {
    "core": {"prefect", "mlflow", "torch"},
    "configs": {"prefect", "mlflow"},  # configs/check.py asks torch how many GPUs there are
    "tasks": {"prefect", "mlflow"},
    "flows": {"mlflow"},  # flows wire tasks and registry calls; MLflow reads and writes live in registry/
}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def edges() -> list[tuple[str, str, str]]:
    """(importing layer, imported package, where) for every import of every layer's files."""
    out = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            out += [(layer, target, f"{path.relative_to(ROOT)}:{line}") for line, target in imports(path)]
    return out


def test_imports_only_go_down_the_layers():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [
        f"{where}: {layer} imports {target}"
        for layer, target, where in edges()
        if target in rank and rank[target] > rank[layer]
    ]
    assert upward == []


def test_no_cycle_among_the_top_level_packages():
    graph: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    for layer, target, _ in edges():
        if target in graph and target != layer:
            graph[layer].add(target)
    seen: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in seen and (cycle := visit(nxt, path + [node])):
                return cycle
        seen[node] = 2
        return None

    cycles = [c for layer in LAYERS if layer not in seen and (c := visit(layer, []))]
    assert cycles == []


def test_lower_floors_import_no_prefect_or_mlflow():
    barred = [
        f"{where}: {layer} imports {target}" for layer, target, where in edges() if target in BARRED.get(layer, set())
    ]
    assert barred == []


def test_the_checker_sees_a_lazy_upward_import(tmp_path):
    planted = tmp_path / "lazy.py"
    planted.write_text("def f():\n    from llmops.cli import main\n    return main\n")
    assert imports(planted) == [(2, "llmops")]


def test_importing_every_task_module_loads_neither_prefect_nor_mlflow():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "tasks").rglob("*.py")
        if "metrics" not in p.parts and "harness_tasks" not in p.parts
    )
    code = (
        f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print(sorted(m for m in ('prefect', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_flows_hold_no_mlflow_client_and_nothing_prints_below_the_cli():
    """The registry owns every MLflow call (flows get named functions, never a client), and only the
    CLI prints: a flow or library that prints writes into a worker's log what a person never sees."""
    found = []
    for layer in ("core", "configs", "tasks", "registry", "flows"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
                    name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                    if name == "print" or (layer == "flows" and name == "client"):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}()")
    assert found == []
