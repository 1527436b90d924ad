"""The synthesize step's settings: which teacher writes variants of the kept rows, and how many.

Read by `tasks/data/synthetic.py`; the operations' prompt templates live there, beside the code
that parses the teacher's replies.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Operation = Literal["rephrase", "harder", "simpler"]
OPERATIONS: tuple[str, ...] = ("rephrase", "harder", "simpler")


class SyntheticConfig(BaseModel):
    """Seed examples -> teacher variants -> the curate filters. Off unless `enabled`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="generate variants; needs 'synthesize' in curate.steps")
    teacher: str = Field("", description="'local:<model folder or hub name>' or 'http:<OpenAI-compatible base URL>'")
    api_model: str | None = Field(None, description="model name sent to an http: teacher")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the key (never the key)")
    operations: list[Operation] = Field(
        default_factory=lambda: ["rephrase"],
        description="rephrase: the same question in other words; harder, simpler: a new instruction and answer",
    )
    variants_per_seed: int = Field(1, ge=1, description="variants per seed and operation")
    max_seeds: int | None = Field(None, ge=1, description="a seeded sample of this many sft seeds; None = all")
    max_new_tokens: int = Field(96, ge=1, description="tokens the teacher may write per reply")
    temperature: float = Field(0.7, ge=0, description="0 = greedy")
    seed: int = Field(0, description="seed of the max_seeds sample and of the teacher's sampling")
    timeout_s: float = Field(60, gt=0, description="per HTTP request")
    max_retries: int = Field(3, ge=0, description="HTTP retries on 429, 5xx and network errors")

    @model_validator(mode="after")
    def _teacher(self) -> "SyntheticConfig":
        problems = []
        if self.enabled or self.teacher:
            kind, _, target = self.teacher.partition(":")
            if kind not in ("local", "http") or not target:
                problems.append(
                    f"teacher: {self.teacher!r} is not 'local:<model folder or hub name>' or 'http:<base URL>'"
                )
            elif kind == "http":
                if not target.startswith(("http://", "https://")):
                    problems.append(f"teacher: the base URL {target!r} must start with http:// or https://")
                if not self.api_model:
                    problems.append("api_model: an http: teacher needs the model name to send")
        if len(set(self.operations)) != len(self.operations) or not self.operations:
            problems.append(f"operations: {self.operations} must be non-empty without repeats")
        if problems:
            raise ValueError("; ".join(problems))
        return self
