"""Scoring a model with EleutherAI's lm-evaluation-harness, as a library, with per-item records.

lm-eval is a second, independent implementation of prompting, generation, answer reading and
scoring beside the suites (`suites.py`, `run.py`), and the source of the standard tasks. Two kinds
of task names are accepted in `eval.harness_tasks`:

- the project's offline tasks (`harness_tasks/`, `llmops_arith`), which score exactly what a suite
  scores: its items, the run's prompt version, the model's chat template, the suite's generation
  length and end-of-sequence stop, and the same answer filters (`harness_data.py`);
- any task, group or tag of the installed lm-eval (`gsm8k`, `arc_easy`, ...), as lm-eval defines
  it (its prompt, shots, stop strings), where its data can be had (`harness_data.check_standard_tasks`).

The model is loaded by the project's loader (`tasks.model.load.load_for_generation`), so lm-eval
runs the very weights the suite runs: an adapter merged (or on its 4-bit base), the base an adapter
names found on this machine, the precision and attention the placement gives. lm-eval's HF wrapper
then does everything else. Its add-BOS rule is set to the suites' (none added on top of a chat
template), and its silent left-truncation of a prompt that leaves no room for the answer is
refused instead (`_WholePromptsLM`, and `positions.py` before the run, per item).

    from tasks.evaluate.harness import run_harness
    run_harness("path/to/model_or_adapter", ["llmops_arith"], "eval.jsonl", template="Solve: {{question}}")

The lm-eval command line runs a rendered offline task too (`HarnessRun.task_configs` holds the YAML it ran):
    lm_eval --model hf --model_args pretrained=DIR,add_bos_token=False --include_path RENDERED_DIR \
        --tasks llmops_arith --apply_chat_template --log_samples --output_path out/
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from configs.prompts import IDENTITY
from configs.schema import EvalConfig
from core.errors import UserError
from tasks.evaluate.harness_data import (
    OFFLINE_TASK_SUITES,
    OfflineTask,
    check_standard_tasks,
    copy_task_folder,
    render_offline_task,
)
from tasks.evaluate.positions import refuse_long_prompts
from tasks.evaluate.results import SuiteResult
from tasks.model.load import Placement


@dataclass
class HarnessItem:
    """One doc of one task: what the model was sent and said, each filter's reading, each score."""

    doc_id: int
    id: str
    target: str
    prompt: str  # as the model received it, chat template applied
    response: str | list[float]  # generate_until: the text; multiple choice: a log-likelihood per choice
    extracted: dict[str, object] = field(default_factory=dict)  # filter -> what it read
    scores: dict[str, float] = field(default_factory=dict)  # "metric,filter" -> score


@dataclass
class HarnessTask:
    name: str
    metrics: dict[str, float]  # lm-eval's "metric,filter" -> value
    stderr: dict[str, float]
    higher_is_better: dict[str, bool]
    items: list[HarnessItem]
    version: str  # lm-eval's version, and for an offline task the suite version it scored


@dataclass
class HarnessRun:
    tasks: dict[str, HarnessTask]
    lm_eval_version: str
    model_args: dict[str, str]  # the same model for lm-eval's command line
    settings: dict[str, object]
    task_configs: dict[str, str]  # offline task -> the YAML it ran, placeholders filled in


def build_model_args(model_dir: str, base: str | None = None) -> dict[str, str]:
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
    args = {"pretrained": base or json.loads(adapter_cfg.read_text())["base_model_name_or_path"], "peft": str(folder)}
    if (folder / "tokenizer_config.json").exists():  # the adapter's own tokenizer and chat template win
        args["tokenizer"] = str(folder)
    return args


def _whole_prompts_lm(**kwargs):
    """lm-eval's HF model, except that a prompt it would left-truncate is refused (see module doc)."""
    from lm_eval.models.huggingface import HFLM

    class _WholePromptsLM(HFLM):
        def tok_batch_encode(self, strings, padding_side="left", left_truncate_len=None, truncation=False):
            ids, mask = super().tok_batch_encode(strings, padding_side, None, truncation)
            if left_truncate_len:
                for text, n in zip(strings, mask.sum(dim=1).tolist()):
                    if n > left_truncate_len:
                        room = self.max_length - left_truncate_len
                        raise UserError(
                            f"lm-eval prompt {text[:60]!r}...",
                            f"is {n} tokens, and with {room} new tokens that exceeds the model's "
                            f"{self.max_length} positions; lm-eval would cut its start off",
                            "evaluate a model with more positions, or fewer shots or new tokens for this task",
                        )
            return ids, mask

    return _WholePromptsLM(**kwargs)


def run_harness(
    model_dir: str,
    tasks: list[str],
    eval_path: str | None = None,
    template: str = IDENTITY,
    max_new_tokens: int = 24,
    batch_size: int = 8,
    limit: int | None = None,
    placement: Placement | None = None,
    base: str | None = None,
) -> HarnessRun:
    """Runs lm-eval on one model folder (or adapter folder); offline tasks read `eval_path`'s items.

    `template`, `max_new_tokens`, `batch_size` and `limit` are the suite's (the config's `eval`
    section and the model's prompt version); a standard task keeps its own prompt and generation
    settings and takes only `limit` and the batch size. `base` overrides the base an adapter names.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from tasks.model.load import load_for_generation, release

    offline = [t for t in tasks if t in OFFLINE_TASK_SUITES]
    standard = [t for t in tasks if t not in OFFLINE_TASK_SUITES]
    if offline and not eval_path:
        raise ValueError(f"offline tasks {offline} need eval items: pass eval_path='path/to/file.jsonl'")
    with tempfile.TemporaryDirectory(prefix="llmops-harness-") as tmp:
        copy_task_folder(Path(tmp))
        rendered = {
            name: render_offline_task(Path(tmp), name, str(eval_path), template, max_new_tokens, limit)
            for name in offline
        }
        # Scanning lm-eval's ~15 k bundled task YAMLs takes about 4 s: only when a standard task is asked for.
        manager = TaskManager(include_path=tmp, include_defaults=bool(standard))
        check_standard_tasks(manager, standard)
        model, tokenizer = load_for_generation(model_dir, placement or Placement(), base)
        try:
            out = _evaluate(lm_eval, manager, model, tokenizer, tasks, rendered, max_new_tokens, batch_size, limit)
        finally:
            del model
            release()
    if out is None:  # simple_evaluate returns None on non-zero ranks of a multi-process run
        return HarnessRun({}, "", {}, {}, {})
    chat = bool(getattr(tokenizer, "chat_template", None))
    return HarnessRun(
        tasks={name: _task_result(name, out, rendered.get(name)) for name in out.get("samples", {})},
        lm_eval_version=str(out.get("lm_eval_version")),
        model_args=build_model_args(model_dir, base),
        settings={"apply_chat_template": chat, "max_gen_toks": max_new_tokens, "batch_size": batch_size},
        task_configs={name: r.yaml for name, r in rendered.items()},
    )


def check_harness_tasks(tasks: list[str]) -> None:
    """Refuses, before any evaluation starts, a task name lm-eval does not know or a standard task whose
    data cannot be had; a few seconds (lm-eval indexes its task files), and none for offline tasks only."""
    standard = [t for t in tasks if t not in OFFLINE_TASK_SUITES]
    if standard:
        from lm_eval.tasks import TaskManager

        check_standard_tasks(TaskManager(), standard)


def _evaluate(lm_eval, manager, model, tokenizer, tasks, rendered, max_new_tokens, batch_size, limit):
    chat = bool(getattr(tokenizer, "chat_template", None))
    for name, task in rendered.items():  # per item, before lm-eval's batches can truncate one unnamed
        refuse_long_prompts(f"lm-eval task {name}", task.ids, task.prompts, max_new_tokens, model, tokenizer)
    lm = _whole_prompts_lm(
        pretrained=model,
        tokenizer=tokenizer,
        backend="causal",
        batch_size=batch_size,
        # The suites send a chat-templated prompt with add_special_tokens=False; the template holds any BOS.
        add_bos_token=False if chat else None,
    )
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        limit=limit,
        log_samples=True,
        apply_chat_template=chat,
        fewshot_as_multiturn=chat,
        task_manager=manager,
    )


def _task_result(name: str, out: dict, rendered: OfflineTask | None) -> HarnessTask:
    """lm-eval's `{"exact_match,strict-match": v, "exact_match_stderr,strict-match": s}` split in two,
    and its samples (one per doc and filter) merged into one record per doc, in doc order."""
    values, stderr = {}, {}
    for key, value in out["results"].get(name, {}).items():
        if "," not in key or not isinstance(value, (int, float)):
            continue  # name, alias, sample_len; and "N/A", lm-eval's stderr when it has none
        metric, _, filt = key.partition(",")
        if metric.endswith("_stderr"):
            stderr[f"{metric.removesuffix('_stderr')},{filt}"] = float(value)
        else:
            values[key] = float(value)
    by_doc: dict[int, HarnessItem] = {}
    for s in out["samples"][name]:
        item = by_doc.setdefault(
            s["doc_id"],
            HarnessItem(
                doc_id=s["doc_id"],
                id=str(s["doc"].get("id", s["doc_id"])),
                target=str(s["target"]),
                prompt=s["arguments"][0][0],
                response=s["resps"][0][0] if len(s["resps"]) == 1 else [r[0] for r in s["resps"]],
            ),
        )
        filt = s.get("filter", "none")
        fr = s["filtered_resps"]
        item.extracted[filt] = fr[0] if isinstance(fr, list) and len(fr) == 1 else fr
        for metric in s.get("metrics", []):
            item.scores[f"{metric},{filt}"] = float(s[metric])
    version = f"lm-eval-{out.get('lm_eval_version')}" + (f"@{rendered.suite_version}" if rendered else "")
    higher = out.get("higher_is_better", {}).get(name, {})
    return HarnessTask(name, values, stderr, higher, [by_doc[k] for k in sorted(by_doc)], version)


def harness_metric_name(key: str) -> str:
    """lm-eval's `exact_match,flexible-extract` as a gate-friendly `exact_match_flexible-extract`."""
    return key.replace(",", "_")


def evaluate_harness(
    model_dir: str,
    tasks: list[str],
    eval_path: str,
    cfg: EvalConfig,
    template: str = IDENTITY,
    placement: Placement | None = None,
    base: str | None = None,
) -> dict[str, SuiteResult]:
    """lm-eval tasks as extra suites, with per-item scores so the gate can pair them; an offline task
    generates with its suite's settings."""
    from tasks.evaluate.run import MIN_NEW_TOKENS
    from tasks.evaluate.suites import TASK_SUITES

    suites = {OFFLINE_TASK_SUITES[t] for t in tasks if t in OFFLINE_TASK_SUITES}
    if any(s not in TASK_SUITES for s in suites):
        raise ValueError(f"offline tasks score task suites ({sorted(TASK_SUITES)}), not {sorted(suites)}")
    max_new = max([cfg.max_new_tokens] + [MIN_NEW_TOKENS.get(s, 0) for s in suites])
    run = run_harness(model_dir, tasks, eval_path, template, max_new, cfg.batch_size, cfg.limit, placement, base)
    out = {}
    for name, task in run.tasks.items():
        keys = list(task.items[0].scores) if task.items else []
        out[name] = SuiteResult(
            version=task.version,
            ids=[i.id for i in task.items],
            scores={harness_metric_name(k): [i.scores[k] for i in task.items] for k in keys},
            outputs=[i.response for i in task.items],
        )
    return out
