"""What a training stage hands on: typed, so the flow, the launcher and the benchmark read fields, not
keys of a nested dict whose shape lived in a docstring.

A stage's result is also written as `<out>/<stage>_summary.json`: a re-run finds a finished stage
there, and the flow reads the result of ranks it launched as other processes from there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RowReport:
    """The rows a stage read, and those it left out because their prompt alone fills `max_length`."""

    rows: int = 0
    dropped_prompt_fills_max_length: int = 0
    dropped_path: str = ""  # `<stage>_dropped.jsonl`: each left-out row with its reason
    longest_prompt_tokens: int = 0
    setting: str = ""  # the config key that keeps them: train.sft.max_length or train.preference.max_length


@dataclass(frozen=True)
class StageResult:
    """One trained stage (sft, dpo, orpo or kto): its folder, loss, steps and throughput."""

    path: str  # the trained folder: an adapter (or full weights) with its tokenizer and records
    train_loss: float
    seconds: float
    steps: int  # optimizer steps, those before a resumed checkpoint included
    resumed_from: str | None = None
    history: list[dict] = field(default_factory=list)  # every logged step: {"step": n, "<stage>/loss": ...}
    examples: str = ""  # `<stage>_examples.jsonl`: the first training examples, decoded
    rows: RowReport = field(default_factory=RowReport)
    throughput: dict[str, Any] = field(default_factory=dict)  # figures for MLflow: tokens_per_s, padding, MFU, ...
    ranks: int = 1  # data-parallel ranks it trained on
    skipped: bool = False  # finished earlier in this folder; not trained again

    @property
    def stage(self) -> str:
        return Path(self.path).name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_file(cls, path: str | Path) -> StageResult:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        return cls(**raw | {"rows": RowReport(**(raw.get("rows") or {}))})

    def as_skipped(self) -> StageResult:
        return replace(self, skipped=True)
