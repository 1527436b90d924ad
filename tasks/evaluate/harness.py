"""Scoring a model with EleutherAI's lm-evaluation-harness, as a library, with per-item records.

lm-eval gives the standard tasks and a second, independent implementation of generation and
scoring beside the in-house one (`tasks/evaluate/score.py`). Two kinds of task names are accepted:

- the project's offline tasks, one YAML each in `harness_tasks/` (`llmops_arith`: the demo eval
  format; `llmops_gsm8k_local`: GSM8K rows with `#### N`). They read a local JSON-lines file whose
  path is given at run time in `data_files`, so they need no hub.
- any task that ships with lm-eval (`gsm8k`, `hellaswag`, ...). These download their data set from
  the hub, so they only work on a machine that is online (not tested here).

How the data path gets in: lm-eval 0.4.13 registers a YAML task by its file and, given a dict in
`tasks`, builds the dict as a whole new task rather than overriding a registered one, and its
YAML loader is private. So `run_harness` copies `harness_tasks/` into a temporary folder with the
`__DATA_FILE__` placeholder replaced by the JSON-quoted path, and registers that folder with
`TaskManager(include_path=...)`; `!function utils....` still resolves next to the copied YAML.
The rendered YAML is returned (`task_configs`), so a run can log exactly the task it ran.

    from tasks.evaluate.harness import run_harness
    run_harness("path/to/model_or_adapter", ["llmops_arith"], {"llmops_arith": "eval.jsonl"})

The lm-eval command line runs the same tasks once the placeholder is filled in by hand:
    lm_eval --model hf --model_args pretrained=DIR --include_path RENDERED_DIR \
        --tasks llmops_arith --apply_chat_template --log_samples --output_path out/
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

HARNESS_TASKS_DIR = Path(__file__).parent / "harness_tasks"
DATA_PLACEHOLDER = "__DATA_FILE__"


def offline_task_names() -> list[str]:
    return sorted(p.stem for p in HARNESS_TASKS_DIR.glob("*.yaml"))


def build_model_args(model_dir: str) -> dict[str, str]:
    """`pretrained=<folder>`, or for a LoRA adapter folder `pretrained=<its base>,peft=<folder>`."""
    folder = Path(model_dir)
    adapter_cfg = folder / "adapter_config.json"
    if not adapter_cfg.exists():
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"{model_dir} holds neither config.json (a model) nor adapter_config.json (an adapter); "
                "resolve registry references with registry.models.resolve_model_dir first"
            )
        return {"pretrained": str(folder)}
    base = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
    args = {"pretrained": base, "peft": str(folder)}
    if (folder / "tokenizer_config.json").exists():  # the adapter's own tokenizer and chat template win
        args["tokenizer"] = str(folder)
    return args


def render_offline_tasks(out_dir: Path, data_files: dict[str, str]) -> dict[str, str]:
    """Copies harness_tasks/ into out_dir with each named task's data path filled in.

    Returns task name -> rendered YAML text. A task left out of data_files keeps its placeholder
    and fails if run, which `run_harness` checks before it gets that far.
    """
    shutil.copytree(HARNESS_TASKS_DIR, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    rendered = {}
    for name, path in data_files.items():
        yaml_path = out_dir / f"{name}.yaml"
        if not yaml_path.exists():
            raise ValueError(
                f"data_files names {name!r}, which is not an offline task; choose from {offline_task_names()}"
            )
        if not Path(path).is_file():
            raise FileNotFoundError(f"data file for {name!r} not found: {path}")
        text = yaml_path.read_text().replace(DATA_PLACEHOLDER, json.dumps(str(Path(path).resolve())))
        yaml_path.write_text(text)
        rendered[name] = text
    return rendered


def _task_summary(metrics: dict) -> dict:
    """lm-eval's `{"exact_match,strict-match": v, "exact_match_stderr,strict-match": s}` split in two."""
    values, stderr = {}, {}
    for key, value in metrics.items():
        if "," not in key or not isinstance(value, (int, float)):
            continue  # name, alias, sample_len; and "N/A", lm-eval's stderr when it has none
        metric, _, filt = key.partition(",")
        if metric.endswith("_stderr"):
            stderr[f"{metric.removesuffix('_stderr')},{filt}"] = float(value)
        else:
            values[key] = float(value)
    return {"metrics": values, "stderr": stderr}


def _item_records(samples: list[dict]) -> list[dict]:
    """One record per doc, in doc order, with every filter's extracted answer and metric values.

    lm-eval logs one sample per (doc, filter); merging them gives what a paired comparison of two
    models needs: the same doc_id, its target, the raw response and the per-item scores.
    """
    by_doc: dict[int, dict] = {}
    for s in samples:
        rec = by_doc.setdefault(
            s["doc_id"],
            {
                "doc_id": s["doc_id"],
                "id": str(s["doc"].get("id", s["doc_id"])),
                "target": str(s["target"]),
                "prompt": s["arguments"][0][0],
                # generate_until: the generated text; multiple choice: one (loglikelihood, is_greedy) per choice
                "response": s["resps"][0][0] if len(s["resps"]) == 1 else [r[0] for r in s["resps"]],
                "extracted": {},
                "metrics": {},
            },
        )
        filt = s.get("filter", "none")
        fr = s["filtered_resps"]
        rec["extracted"][filt] = fr[0] if isinstance(fr, list) and len(fr) == 1 else fr
        for metric in s.get("metrics", []):
            rec["metrics"][f"{metric},{filt}"] = float(s[metric])
    return [by_doc[k] for k in sorted(by_doc)]


def run_harness(
    model_dir: str,
    tasks: list[str],
    data_files: dict[str, str] | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    apply_chat_template: bool = True,
) -> dict:
    """Runs lm-eval on one model folder (or adapter folder) and returns scores per task.

    Returns `{task: {"metrics": {"exact_match,strict-match": v, ...}, "stderr": {same keys},
    "higher_is_better": {"exact_match": True}, "n": len(items), "items": [{"doc_id", "id",
    "target", "prompt", "response", "extracted": {filter: answer}, "metrics":
    {"exact_match,strict-match": 0|1, ...}}]}}` plus `"_run"` with the model args, lm-eval
    version and the rendered task YAMLs. Metric keys are lm-eval's own `metric,filter`.
    """
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    data_files = dict(data_files or {})
    offline = set(offline_task_names())
    missing = [t for t in tasks if t in offline and t not in data_files]
    if missing:
        raise ValueError(
            f"offline tasks {missing} need a data file: pass data_files={{'{missing[0]}': 'path/to/file.jsonl'}}"
        )
    unused = sorted(set(data_files) - set(tasks))
    if unused:
        raise ValueError(f"data_files names tasks that are not run: {unused}")
    model_args = build_model_args(model_dir)
    with tempfile.TemporaryDirectory(prefix="llmops-harness-") as tmp:
        rendered = render_offline_tasks(Path(tmp), data_files)
        # Scanning lm-eval's ~15 k bundled task YAMLs takes about 4 s: only when a bundled task is asked for.
        manager = TaskManager(include_path=tmp, include_defaults=any(t not in offline for t in tasks))
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=list(tasks),
            batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu",
            limit=limit,
            log_samples=True,
            apply_chat_template=apply_chat_template,
            task_manager=manager,
        )
    if out is None:  # simple_evaluate returns None on non-zero ranks of a multi-process run
        return {}
    result: dict = {}
    for name in tasks:
        summary = _task_summary(out["results"].get(name, {}))
        items = _item_records(out.get("samples", {}).get(name, []))
        result[name] = {
            **summary,
            "higher_is_better": out.get("higher_is_better", {}).get(name, {}),
            "n": len(items),
            "items": items,
        }
    result["_run"] = {"model_args": model_args, "lm_eval_version": out.get("lm_eval_version"), "task_configs": rendered}
    return result
