"""What lm-eval reads: the project's offline tasks rendered for one run, and standard tasks' data found or refused.

The offline tasks (`harness_tasks/*.yaml`) score exactly what a suite scores. Their data file is
written per run from the suite's own items (`load_suite`: same ids, targets and limit), each with
its prompt rendered by the same function and template the suite generates with
(`tasks.prompts.render_prompt`), so the YAML's `doc_to_text: "{{prompt}}"` hands lm-eval the very
string the suite sends through the chat template. The suite's generation length is written into
the YAML in place of `__MAX_GEN_TOKS__`.

lm-eval 0.4.13 registers a YAML task by its file and, given a dict in `tasks`, builds a whole new
task rather than overriding a registered one, and its YAML loader is private. So the folder is
copied to a temporary one with the placeholders replaced, and registered with
`TaskManager(include_path=...)`; `!function utils....` still resolves next to the copied YAML.

A standard task (`gsm8k`, `arc_easy`, ...) reads its data set from the hub, or from the local
datasets cache when the hub is offline (this project's default, `HF_DATASETS_OFFLINE=1`). It is
built before any model loads; when its data cannot be had, one line names the task, the data set
and where it was looked for.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from tasks.evaluate.suites import load_suite
from tasks.prompts import render_prompt

HARNESS_TASKS_DIR = Path(__file__).parent / "harness_tasks"
DATA_PLACEHOLDER = "__DATA_FILE__"
MAX_GEN_PLACEHOLDER = "__MAX_GEN_TOKS__"
# Which suite's items each offline task scores.
OFFLINE_TASK_SUITES = {"llmops_arith": "arithmetic"}


def offline_task_names() -> list[str]:
    return sorted(p.stem for p in HARNESS_TASKS_DIR.glob("*.yaml"))


@dataclass
class OfflineTask:
    """One offline task as rendered for a run: its items' ids and prompts, and the YAML lm-eval ran."""

    name: str
    suite: str
    suite_version: str
    ids: list[str]
    prompts: list[str]
    yaml: str


def render_offline_task(
    out_dir: Path, name: str, eval_path: str, template: str, max_gen_toks: int, limit: int | None
) -> OfflineTask:
    """Writes `name`'s data file (the suite's items with rendered prompts) and YAML into `out_dir`."""
    if name not in OFFLINE_TASK_SUITES:
        raise ValueError(f"{name!r} is not an offline task; choose from {offline_task_names()}")
    try:
        suite = load_suite(OFFLINE_TASK_SUITES[name], eval_path, limit)
    except ValueError as err:
        raise UserError(f"lm-eval task {name}: eval items", str(err), "fix the file, or evaluate on another") from None
    prompts = [render_prompt(template, item["question"]) for item in suite.items]
    data = out_dir / f"{name}.data.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for item, prompt in zip(suite.items, prompts):
            f.write(json.dumps({"id": item["id"], "prompt": prompt, "target": item["target"]}) + "\n")
    text = (HARNESS_TASKS_DIR / f"{name}.yaml").read_text()
    text = text.replace(DATA_PLACEHOLDER, json.dumps(str(data))).replace(MAX_GEN_PLACEHOLDER, str(max_gen_toks))
    (out_dir / f"{name}.yaml").write_text(text)
    ids = [item["id"] for item in suite.items]
    return OfflineTask(name, suite.name, suite.version, ids, prompts, text)


def copy_task_folder(out_dir: Path) -> None:
    """The YAMLs' shared filters (`utils.py`) next to where the rendered YAMLs will be; no YAML yet, so
    an offline task not rendered for this run is not registered half-filled."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in HARNESS_TASKS_DIR.glob("*.py"):
        shutil.copy2(path, out_dir / path.name)


def _cache_places() -> str:
    import datasets.config
    import huggingface_hub.constants

    datasets_cache, hub_cache = datasets.config.HF_DATASETS_CACHE, huggingface_hub.constants.HF_HUB_CACHE
    return f"the datasets cache {datasets_cache} and the hub cache {hub_cache}"


def _hub_offline() -> bool:
    import datasets.config
    import huggingface_hub.constants

    return bool(datasets.config.HF_HUB_OFFLINE or huggingface_hub.constants.HF_HUB_OFFLINE)


def _data_set_of(entry) -> str:
    cfg = getattr(entry, "cfg", None) or {}
    path, name = cfg.get("dataset_path"), cfg.get("dataset_name")
    if not path:
        return "its data sets"
    return f"its data set {path}" + (f" ({name})" if name else "")


def check_standard_tasks(manager, names: list[str]) -> None:
    """Builds each standard task once (which loads its data), so that a missing data set stops the run
    in one line before any model loads, instead of deep inside lm-eval."""
    for name in names:
        entry = manager.task_index.get(name)
        if entry is None:
            raise UserError(
                f"eval.harness_tasks: {name}",
                f"is neither one of the project's offline tasks ({', '.join(offline_task_names())}) "
                "nor a task, group or tag of the installed lm-eval",
                "check the spelling; `lm_eval ls tasks` lists lm-eval's",
            )
        try:
            manager.load([name])
        except (OSError, ValueError, FileNotFoundError) as err:  # ConnectionError is an OSError
            if _hub_offline():
                where = f"is not in {_cache_places()}, and the hub is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)"
            else:
                why = f"{type(err).__name__}: {err}"
                where = f"could not be fetched from the hub ({why}) nor found in {_cache_places()}"
            raise UserError(
                f"lm-eval task {name}",
                f"{_data_set_of(entry)} {where}",
                "run the task once on a machine that reaches the hub (HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0) "
                "to fill the cache, or copy the cache here; offline, use the project's task llmops_arith",
            ) from None
