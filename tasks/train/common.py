"""Helpers every training method shares: trainer settings, the LoRA config, data, logging, saving.

Methods are complete functions (`train_sft`, `train_preference`) that call these helpers; there is
no trainer class hierarchy. Models are loaded by `tasks.model.load`, the one loader.

Every method is resumable: checkpoints go to `<out>/checkpoints-<name>` every `save_steps` (10 %
of the steps by default), a call that finds one continues from it, and a call that finds the
method's finished result returns it without training again. So re-running a killed run with the
same output folder finishes it with the same number of optimizer steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from configs.schema import TrainConfig
from tasks.model.load import BASE_RECORD, TRAINING_RECORD, Placement, read_record
from tasks.prompts import render_prompt
from tasks.train.result import RowReport, StageResult

StepSink = Callable[[int, dict[str, float]], None]


def default_save_steps(cfg: TrainConfig, max_steps: int) -> int:
    return cfg.save_steps or max(1, max_steps // 10)


def shared_trainer_args(
    cfg: TrainConfig, placement: Placement, out: Path, name: str, max_steps: int, log_points: int
) -> dict[str, Any]:
    """The trainer settings every method shares: schedule, logging, checkpoints, device and precision."""
    return {
        "output_dir": str(out / f"checkpoints-{name}"),
        "max_steps": max_steps,
        "lr_scheduler_type": "cosine",
        "warmup_steps": max(1, max_steps // 20),
        "logging_steps": max(1, max_steps // log_points),
        "save_strategy": "steps",
        "save_steps": default_save_steps(cfg, max_steps),
        "save_total_limit": 2,
        "report_to": "none",  # figures go to the caller's sink (make_step_logger)
        "seed": cfg.seed,
        "use_cpu": placement.device == "cpu",  # trl defaults to bf16 and fails on a CPU unless told
        "bf16": cfg.precision == "bf16",
        "fp16": cfg.precision == "fp16",
        "activation_checkpointing": cfg.activation_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False} if cfg.activation_checkpointing else None,
        "use_liger_kernel": cfg.liger,
        "dataloader_pin_memory": placement.device == "cuda",
    }


def adapter_config(cfg: TrainConfig):
    """The LoRA config of an adapter method; None for full weights, which is how trl tells the two apart
    (`peft_config=None`), and the one switch every method uses."""
    if not cfg.adapter:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sft_examples(path: str, template: str) -> list[dict]:
    """Chat rows as conversational prompt/completion pairs: the loss is on the last answer only.

    The prompt template fills each user turn; the identity template `{{question}}` leaves rows as they are.
    """
    examples = []
    for row in read_jsonl(path):
        messages = [dict(m) for m in row["messages"]]
        for m in messages:
            if m["role"] == "user":
                m["content"] = render_prompt(template, m["content"])
        examples.append({"id": str(row.get("id", len(examples))), "prompt": messages[:-1], "completion": messages[-1:]})
    return examples


def prompt_tokens(tokenizer, prompt: list[dict]) -> int:
    encoded = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def main_rank() -> bool:
    """Rank 0 of a multi-rank launch, or the only process: the one that writes a stage's files."""
    import os

    return os.environ.get("RANK", "0") == "0"


def answerless_rows(
    examples: list[dict],
    tokenizer,
    max_length: int,
    out: Path,
    stage: str,
    max_fraction: float,
    section: str | None = None,
) -> tuple[list[dict], RowReport]:
    """Rows whose prompt alone fills `max_length` tokens: truncation leaves them no answer token (trl
    drops them; SFT packed, or ORPO, would keep them with no answer to learn). Returns the other rows,
    which are what trains, and a report. The dropped ones are written to `<stage>_dropped.jsonl` with
    the reason, so no row is lost unrecorded. When more than `max_fraction` of the rows are such (or
    all of them), training stops before it starts, saying which setting to change:
    `train.<section>.max_length` (section: `sft`, or `preference` for dpo, orpo and kto)."""
    from core.errors import UserError

    section = section or stage

    lengths = [prompt_tokens(tokenizer, ex["prompt"]) for ex in examples]
    lost = [(ex, n) for ex, n in zip(examples, lengths) if n >= max_length]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stage}_dropped.jsonl"
    if main_rank():  # every rank finds the same rows; one writes them
        with open(path, "w", encoding="utf-8") as f:
            for ex, n in lost:
                f.write(
                    json.dumps(
                        {
                            "id": ex["id"],
                            "reason": "prompt_fills_max_length",
                            "prompt_tokens": n,
                            "max_length": max_length,
                        }
                    )
                    + "\n"
                )
    report = RowReport(
        rows=len(examples),
        dropped_prompt_fills_max_length=len(lost),
        dropped_path=str(path),
        longest_prompt_tokens=max(lengths, default=0),
        setting=f"train.{section}.max_length",
    )
    if examples and (len(lost) / len(examples) > max_fraction or len(lost) == len(examples)):
        p95 = sorted(lengths)[int(0.95 * (len(lengths) - 1))]
        raise UserError(
            f"train.{section}.max_length={max_length}",
            f"{len(lost)} of {len(examples)} training rows ({len(lost) / len(examples):.0%}) have a prompt "
            f"of {max_length} tokens or more, so truncation would leave them no answer to learn "
            f"(e.g. row {lost[0][0]['id']}: {lost[0][1]} tokens; the longest: {report.longest_prompt_tokens})",
            f"raise train.{section}.max_length above {p95} tokens plus the answer's length (95% of the "
            f"prompts have at most {p95}), "
            f"shorten the prompt template, or accept the loss with train.{section}.max_dropped_fraction "
            f"(now {max_fraction}); the rows are listed in {path}",
        )
    return [ex for ex, n in zip(examples, lengths) if n < max_length], report


def pref_examples(path: str, template: str) -> list[dict]:
    """Preference rows as conversational prompt/chosen/rejected; `id` names the row in drop records."""
    return [
        {
            "id": str(row.get("id", i)),
            "prompt": [{"role": "user", "content": render_prompt(template, row["prompt"])}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for i, row in enumerate(read_jsonl(path))
    ]


def make_step_logger(prefix: str, sink: StepSink | None = None):
    """A trainer callback that keeps each logged step's figures and hands them to `sink`.

    The library stays free of any tracking client: a flow passes a sink that writes to its MLflow
    run by id (`registry.tracking.metric_sink`), a script passes none and reads `history`.
    """
    from transformers import TrainerCallback

    class StepLogger(TrainerCallback):
        def __init__(self):
            self.history: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs:
                return
            figures = {f"{prefix}/{k}": float(v) for k, v in logs.items() if isinstance(v, (int, float))}
            self.history.append({"step": state.global_step, **figures})
            if sink is not None:
                sink(state.global_step, figures)

    return StepLogger()


def finished(out: Path, name: str) -> StageResult | None:
    """The result of a method that already finished in this folder (a re-run skips it)."""
    path = out / f"{name}_summary.json"
    return StageResult.from_file(path) if path.exists() and (out / name).is_dir() else None


def last_checkpoint(out: Path, name: str) -> str | None:
    """The newest complete checkpoint. The trainer writes `trainer_state.json` last, so a folder
    without a readable one was cut off by a crash mid-save: it is removed, and the one before used."""
    import shutil

    folder = out / f"checkpoints-{name}"
    found = (
        sorted(
            folder.glob("checkpoint-*"),
            key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name.rsplit("-", 1)[1].isdigit() else -1,
            reverse=True,
        )
        if folder.is_dir()
        else []
    )
    for checkpoint in found:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return str(checkpoint)
        except (OSError, ValueError):
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def base_reference(base: str) -> dict[str, Any]:
    """How an adapter names its base: a local folder by path and content hash, a hub model by name and revision."""
    folder = Path(base)
    if folder.is_dir():
        from tasks.evaluate.cache import model_key

        return {"name_or_path": str(folder.resolve()), "local": True, "content_hash": model_key(folder)}
    return {"name_or_path": base, "local": False, "revision": _hub_revision(base)}


def _hub_revision(name: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(name, "config.json")
    except Exception:  # an odd cache layout must not stop training
        return None
    return Path(path).parent.name if isinstance(path, str) else None


EXAMPLES_KEPT = 20


def write_examples(trainer, tokenizer, out: Path, name: str) -> Path:
    """The first tokenised training examples, decoded, as the trainer will feed them: what the model
    really sees (chat template, prompt wrapper, truncation), for a person and for tests to read."""
    path = out / f"{name}_examples.jsonl"
    dataset = trainer.train_dataset
    with open(path, "w", encoding="utf-8") as f:
        for row in dataset.select(range(min(EXAMPLES_KEPT, len(dataset)))):
            decoded = {
                key: tokenizer.decode(ids)
                for key, ids in row.items()
                if key.endswith("_ids") and isinstance(ids, list) and ids and isinstance(ids[0], int)
            }
            f.write(json.dumps(decoded, ensure_ascii=False) + "\n")
    return path


def run_and_save(
    trainer, tokenizer, out: Path, name: str, logger, meter, records: dict[str, Any], rows: RowReport | None = None
) -> StageResult:
    """Trains (from the last checkpoint if there is one), saves the result as `out/name` with its
    tokenizer and records, and writes `out/<name>_summary.json` and `out/<name>_examples.jsonl`.

    Under a multi-rank launch every rank trains and takes part in the save (FSDP gathers the sharded
    weights there), and rank 0 alone writes: the trained folder, the records, the summary."""
    out.mkdir(parents=True, exist_ok=True)
    main = trainer.args.process_index == 0
    examples = write_examples(trainer, tokenizer, out, name) if main else out / f"{name}_examples.jsonl"
    resume = last_checkpoint(out, name)
    meter.start()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    final = out / name
    if getattr(trainer, "is_fsdp_enabled", False):  # checkpoints may be sharded; the trained folder is whole
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(final))  # the weights (or adapter) and the tokenizer, written by rank 0
    throughput = meter.summary(seconds)  # every rank: tokens are summed across them
    summary = StageResult(
        path=str(final),
        train_loss=float(result.training_loss),
        seconds=seconds,
        steps=int(result.global_step),
        resumed_from=resume,
        history=logger.history,
        examples=str(examples),
        rows=rows or RowReport(),
        throughput=throughput,
        ranks=trainer.args.world_size,
    )
    if main:
        (final / "training_args.bin").unlink(missing_ok=True)  # the trainer's pickle: not part of a model
        for filename, payload in records.items():
            (final / filename).write_text(json.dumps(payload, indent=1))
        (out / f"{name}_summary.json").write_text(summary.to_json())
    return summary


def training_records(cfg: TrainConfig, placement: Placement, base: str, stage: str) -> dict[str, Any]:
    """What an adapter folder carries so any machine can load it the way it was trained."""
    return {
        TRAINING_RECORD: {
            "method": cfg.method,
            "quant_bits": placement.quant_bits,
            "precision": cfg.precision,
            "stage": stage,
        },
        BASE_RECORD: base_reference(base),
    }


def inherited_base(sft_dir: str) -> str:
    """The base of an SFT result: itself for full weights, else the base its adapter names."""
    recorded = read_record(sft_dir, BASE_RECORD)
    if recorded:
        return recorded["name_or_path"]
    config = Path(sft_dir) / "adapter_config.json"
    return json.loads(config.read_text())["base_model_name_or_path"] if config.exists() else sft_dir
