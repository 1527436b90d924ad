"""The typed schema of a run config. Unknown keys are refused, so a typo fails instead of vanishing.

A config is checked twice before any work starts: by this schema (types, ranges, cross-field
rules) and by `configs.check.check_machine` (does this machine have what the config asks for).
Both report every problem at once, each named by its dotted field path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from configs.cost import CostConfig
from configs.prompts import template_fields, template_problems
from configs.quality import CurateQualityConfig
from configs.synthetic import SyntheticConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    """Where the raw rows come from. Without `inputs`, the bundled demo generator writes them."""

    inputs: list[str] = Field(
        default_factory=list,
        description="raw data: JSONL (plain or .gz), Parquet or datasets "
        "save_to_disk folders, any row format curate.format reads; empty = demo data",
    )
    eval_path: str | None = Field(None, description="held-out eval JSONL; required when `inputs` is set")
    seed: int = Field(0, description="seed of the demo generator (used only without `inputs`)")
    demo_train_rows: int = Field(600, ge=10, description="instruction rows the demo generator writes")
    demo_pref_rows: int = Field(300, ge=0, description="preference pairs the demo generator writes")
    demo_eval_rows: int = Field(100, ge=5, description="held-out eval items the demo generator writes")

    @model_validator(mode="after")
    def _eval_with_inputs(self) -> "DataConfig":
        if self.inputs and not self.eval_path:
            raise ValueError("eval_path is required when inputs are given (the eval set must be held out)")
        return self


CurateStep = Literal["validate", "synthesize", "exact_dedup", "near_dedup", "length", "quality", "pii", "decontaminate"]
DEFAULT_CURATE_STEPS: list[CurateStep] = [
    "validate",
    "exact_dedup",
    "near_dedup",
    "length",
    "quality",
    "pii",
    "decontaminate",
]


class CurateConfig(Strict):
    """How raw rows become the training set: which steps run, in which order, with which thresholds."""

    format: Literal["auto", "text", "messages", "alpaca", "qa", "pref", "hh"] = Field(
        "auto", description="layout of every input (tasks/data/formats.py); auto = detected per file"
    )
    steps: list[CurateStep] = Field(
        default_factory=lambda: list(DEFAULT_CURATE_STEPS),
        description="the steps in run order; a row is dropped at the first that fails it. validate comes first",
    )
    min_chars: int = Field(8, ge=0, description="rows with less text are dropped as too_short")
    max_chars: int = Field(4000, ge=1, description="rows with more text are dropped as too_long")
    minhash_num_perm: int = Field(
        128,
        ge=16,
        le=1024,
        description="MinHash permutations per row for near_dedup; more estimate Jaccard similarity closer, at more CPU",
    )
    minhash_threshold: float = Field(0.8, gt=0.0, lt=1.0, description="Jaccard similarity of near-duplicates")
    minhash_bands: int | None = Field(
        None,
        ge=1,
        description="LSH bands; set with minhash_rows to replace the banding "
        "chosen from the threshold (bands x rows <= minhash_num_perm)",
    )
    minhash_rows: int | None = Field(None, ge=1, description="rows (permutations) per LSH band")
    processes: Literal["auto"] | int = Field(
        "auto",
        description="worker processes for the per-row steps and MinHash keys; auto = every core (one for "
        "inputs under 16 MB). Any number gives the same dataset, quarantine and report counts",
    )
    shingle_words: int = Field(5, ge=1, le=20, description="word n-gram size of MinHash shingles")
    mask_pii: bool = Field(True, description="false skips the pii step even when `steps` lists it")
    shards: int = Field(
        1,
        ge=1,
        description="record ranges the inputs are split into and curated in parallel, in the configured "
        "step order and with the dataset of one shard; dedup goes through them one after another",
    )
    task_runner: Literal["threads", "dask"] = Field("threads", description="where shards run: a thread pool, or Dask")
    dask_address: str | None = Field(
        None,
        description="scheduler of an existing Dask cluster (tcp://host:8786); none starts a local in-process cluster",
    )
    synthetic: SyntheticConfig = Field(
        default_factory=SyntheticConfig, description="teacher-generated variants of the kept rows (the synthesize step)"
    )
    quality: CurateQualityConfig = Field(
        default_factory=CurateQualityConfig,
        description="thresholds of the quality step: language, repetition, C4, toxicity",
    )
    allow_unreadable: bool = Field(
        False,
        description="an input that cannot be read is reported and the rest curated "
        "either way; true: the run then succeeds, false: it fails",
    )
    decontaminate_n: int = Field(13, ge=1, description="word n-gram a training row may not share with an eval item")
    decontaminate_paths: list[str] = Field(
        default_factory=list,
        description="more eval sets to decontaminate against; the run's eval split is always added",
    )

    @field_validator("steps")
    @classmethod
    def _validate_first(cls, steps: list[str]) -> list[str]:
        problems = []
        if not steps or steps[0] != "validate":
            problems.append(
                f"'validate' must be the first step (got {steps}): it normalises the text every later "
                "step compares and checks the shape they rely on. Put validate first"
            )
        repeated = sorted({s for s in steps if steps.count(s) > 1})
        if repeated:
            problems.append(f"each step may be listed once; {repeated} appear more than once")
        if problems:
            raise ValueError("; ".join(problems))
        return steps

    @model_validator(mode="after")
    def _banding(self) -> "CurateConfig":
        if (self.minhash_bands is None) != (self.minhash_rows is None):
            raise ValueError("minhash_bands and minhash_rows go together: set both, or neither")
        if self.minhash_bands and self.minhash_bands * self.minhash_rows > self.minhash_num_perm:
            raise ValueError(
                f"minhash_bands x minhash_rows ({self.minhash_bands * self.minhash_rows}) exceeds "
                f"minhash_num_perm ({self.minhash_num_perm})"
            )
        return self

    @model_validator(mode="after")
    def _synthesize_listed(self) -> "CurateConfig":
        if self.synthetic.enabled and "synthesize" not in self.steps:
            raise ValueError(
                "synthetic.enabled is true but 'synthesize' is not in steps; add it after validate "
                "(before the dedup and filter steps, so the variants pass them too)"
            )
        return self

    @field_validator("processes")
    @classmethod
    def _processes(cls, value: str | int) -> str | int:
        if value != "auto" and not 1 <= int(value) <= 256:
            raise ValueError(f"processes must be 'auto' or 1..256, got {value}")
        return value

    @model_validator(mode="after")
    def _range(self) -> "CurateConfig":
        if self.min_chars >= self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be below max_chars ({self.max_chars})")
        return self


class TinyModelConfig(Strict):
    """The embedded default base model, built locally since no model hub is reachable."""

    vocab_size: int = Field(2000, ge=300, description="tokens in the byte-level BPE vocabulary trained for it")
    hidden_size: int = Field(
        128, ge=16, description="width of each layer (the MLP is 4x wider); divisible by num_heads"
    )
    num_layers: int = Field(4, ge=1, description="transformer decoder layers")
    num_heads: int = Field(4, ge=1, description="attention heads per layer")
    pretrain_steps: int = Field(300, ge=0, description="steps of pre-training on the project's own prose")
    seed: int = Field(0, description="seed of the tokenizer corpus, the initial weights and pre-training")

    @model_validator(mode="after")
    def _heads(self) -> "TinyModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        return self


class ModelConfig(Strict):
    """The base model every run fine-tunes and evaluates against."""

    base: str = Field("embedded", description="'embedded' (the tiny local model), a local path, or a hub name")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa",
        description="attention kernel for training and evaluation; flash_attention_2 needs the flash-attn package",
    )
    tiny: TinyModelConfig = Field(
        default_factory=TinyModelConfig, description="size of the embedded model; used only when base is 'embedded'"
    )


class LoraConfig(Strict):
    """The LoRA adapter trained by the lora and qlora methods (peft)."""

    r: int = Field(
        16, ge=1, description="rank of the low-rank update matrices: larger learns more, with more parameters"
    )
    alpha: int = Field(32, ge=1, description="scale of the update: it is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter's input while training; 0 = none")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="names of the modules that get an adapter, or all-linear: every linear layer but the output",
    )


class SftConfig(Strict):
    """Supervised fine-tuning on the instruction and chat rows (trl's SFTTrainer)."""

    max_steps: int = Field(200, ge=1, description="optimizer steps of supervised fine-tuning")
    learning_rate: float = Field(
        3e-3, gt=0, description="peak learning rate, reached after a 5% warmup, then cosine decay"
    )
    batch_size: int = Field(16, ge=1, description="sequences per device and step (packed sequences with packing)")
    grad_accum: int = Field(
        1, ge=1, description="batches accumulated per optimizer step (effective batch: batch_size x grad_accum x GPUs)"
    )
    max_length: int = Field(128, ge=16, description="tokens per sequence; with packing, the length rows are packed to")
    max_dropped_fraction: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="largest share of rows whose prompt fills max_length (no answer token left) before training stops",
    )


class PreferenceConfig(Strict):
    """Preference tuning after SFT, from the SFT result: DPO, ORPO or KTO (trl's trainers)."""

    enabled: bool = Field(True, description="tune on the preference rows after SFT; skipped when the dataset has none")
    method: Literal["dpo", "orpo", "kto"] = Field(
        "dpo",
        description="dpo: against a frozen reference; orpo: odds-ratio, no reference; kto: unpaired good/bad labels",
    )
    max_steps: int = Field(60, ge=1, description="optimizer steps of preference tuning")
    learning_rate: float = Field(
        1e-4, gt=0, description="peak learning rate, reached after a 5% warmup, then cosine decay"
    )
    batch_size: int = Field(8, ge=1, description="preference examples per device and step")
    beta: float = Field(0.1, gt=0, description="DPO/KTO temperature; ORPO's lambda (weight of the odds-ratio term)")
    max_length: int = Field(128, ge=16, description="tokens of prompt plus response; longer examples are truncated")
    max_dropped_fraction: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="largest share of pairs whose prompt fills "
        "max_length (no response token left) before training stops",
    )


class TrainConfig(Strict):
    """How the base model is fine-tuned: SFT, then preference tuning, on one device or several GPUs."""

    method: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="lora: an adapter on the frozen base; qlora: the same on a quant_bits base (bitsandbytes); "
        "full: all weights",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="dtype of the weights and the training arithmetic; bf16 and fp16 need a GPU that has them"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where training runs; auto: the GPU when there is one"
    )
    num_gpus: int = Field(
        0,
        ge=0,
        description="GPUs to train on, one data-parallel rank each; above 1 the train stage launches the ranks "
        "itself (accelerate). 0 means CPU",
    )
    num_processes: int | None = Field(
        None,
        ge=1,
        description="data-parallel ranks to launch on this machine; default: num_gpus, else 1. On a CPU, N ranks "
        "talk over gloo: slower than one, for testing the multi-rank path without GPUs",
    )
    accelerate_config: str = Field(
        "infra/accelerate/multi_gpu.yaml",
        description="accelerate config the ranks are launched with: multi_gpu.yaml (DDP), fsdp.yaml (FSDP, full "
        "or lora), fsdp_qlora.yaml, deepspeed_zero2.yaml; a relative path is read from the checkout",
    )
    quant_bits: Literal[4, 8] = Field(4, description="bitsandbytes bits for qlora")
    packing: bool = Field(
        False,
        description="pack rows into sft.max_length sequences without padding (trl's best-fit "
        "packing); short rows otherwise leave a GPU idle",
    )
    activation_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, ~30% more compute"
    )
    liger: bool = Field(
        False, description="Liger kernels (fused RMSNorm, RoPE, SwiGLU, cross-entropy); needs liger-kernel"
    )
    save_steps: int | None = Field(
        None,
        ge=1,
        description="checkpoint every N optimizer steps (default: every 10%); the "
        "same command re-run after a crash resumes from the last",
    )
    seed: int = Field(0, description="seed the trainers set before training: data order and dropout")
    lora: LoraConfig = Field(
        default_factory=LoraConfig, description="the adapter trained by lora and qlora; unused by full"
    )
    sft: SftConfig = Field(default_factory=SftConfig, description="supervised fine-tuning, the first training stage")
    preference: PreferenceConfig = Field(
        default_factory=PreferenceConfig, description="preference tuning (DPO, ORPO or KTO), from the SFT result"
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, raw):
        if isinstance(raw, dict) and "dpo" in raw:
            raise ValueError("train.dpo is now train.preference (with method: dpo, orpo or kto); rename the section")
        return raw

    @model_validator(mode="after")
    def _device(self) -> "TrainConfig":
        if self.device == "cpu" and self.num_gpus > 0:
            raise ValueError(f"device is 'cpu' but num_gpus is {self.num_gpus}; set num_gpus: 0 or device: cuda")
        if self.device == "cpu" and self.precision == "fp16":
            raise ValueError("fp16 training needs a GPU; use precision: fp32 (or bf16 on a CPU that supports it)")
        if self.num_gpus and self.num_processes and self.num_processes != self.num_gpus:
            raise ValueError(
                f"num_processes ({self.num_processes}) and num_gpus ({self.num_gpus}) disagree: one rank runs per "
                "GPU; set only num_gpus"
            )
        return self

    # The method is read here, once: everything else asks these (TRL's rule: no peft config = full weights).
    @property
    def adapter(self) -> bool:
        """An adapter is trained (lora, qlora) rather than every weight (full)."""
        return self.method != "full"

    @property
    def base_quant_bits(self) -> int | None:
        """Bits of the bitsandbytes base the adapter trains on (qlora), or None for an unquantised base."""
        return self.quant_bits if self.method == "qlora" else None

    @property
    def ranks(self) -> int:
        """Data-parallel ranks a train stage runs on this machine."""
        return self.num_processes or max(self.num_gpus, 1)


class EvalConfig(Strict):
    """What the candidate, the champion and the base model are scored on, and how they generate."""

    suites: list[Literal["arithmetic", "json-format", "held-out", "safety"]] = Field(
        default_factory=lambda: ["arithmetic", "json-format", "safety"],
        description="arithmetic and held-out read the run's eval split; json-format and safety are bundled",
    )
    max_new_tokens: int = Field(
        24, ge=1, description="tokens generated per answer (json-format gets at least 64, safety 32)"
    )
    batch_size: int = Field(32, ge=1, description="prompts generated at a time")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N items of each suite")
    cost: CostConfig = Field(
        default_factory=CostConfig,
        description="how a query is priced: an API model's token "
        "prices (model_price), else the generation time at gpu_hour_usd",
    )
    harness_tasks: list[str] = Field(
        default_factory=list,
        description="lm-eval tasks to run as well: llmops_arith (the arithmetic suite, scored alike), "
        "or lm-eval's own by name (gsm8k, arc_easy), whose data must be online or in the datasets cache",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where models generate; auto: the GPU when there is one"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that has it, else fp16 on a GPU, fp32 on the CPU"
    )


# The kinds of probe the bundled safety suite holds (tasks/evaluate/data/safety_probes.jsonl).
PROBE_KINDS = ("prompt_injection", "refusal", "pii_leak")


class MetricRule(Strict):
    """One suite/metric the gate watches: a minimum value and the regression tolerated, on the 0-1 scale."""

    metric: str = Field(
        "arithmetic/exact_match",
        pattern=r"^[\w.-]+/[\w.-]+$",
        description="suite/metric watched, e.g. arithmetic/exact_match or held-out/chrf",
    )
    min_value: float | None = Field(None, ge=0.0, le=1.0, description="the candidate's own mean must reach this")
    max_regression: float = Field(
        0.05, ge=0.0, le=1.0, description="non-inferiority margin: how much worse than the champion is tolerated"
    )


def _as_fields(rule) -> dict:
    """A rule given as a MetricRule, a mapping of its fields, or nothing (every default)."""
    if isinstance(rule, MetricRule):
        return rule.model_dump(exclude={"metric"})
    return dict(rule or {})


class GateConfig(Strict):
    """When a candidate may replace the champion, and what happens when the evidence is unclear.

    Every figure is on the 0-1 scale of the scores (BLEU too), so margins mean the same on every metric."""

    primary: str = Field(
        "arithmetic/exact_match",
        pattern=r"^[\w.-]+/[\w.-]+$",
        description="suite/metric the first model's gain over the base model is judged on",
    )
    min_gain_over_base: float = Field(
        0.05, ge=-1.0, le=1.0, description="the first model minus the base, on the primary metric, must reach this"
    )
    rules: list[MetricRule] = Field(
        default_factory=lambda: [MetricRule()],
        description="the metrics watched, each with a minimum value and the regression tolerated",
    )
    min_items: int = Field(
        20, ge=2, description="fewer paired items than this cannot decide: the comparison asks for approval"
    )
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="family-wise significance level (Holm across rules)")
    require_improvement: bool = Field(
        False, description="the primary metric must be significantly better than the champion's"
    )
    max_latency_increase: float | None = Field(
        1.0, ge=0.0, description="allowed rise of generation time vs the champion, timed in the same run (1.0 = 2x)"
    )
    max_cost_increase: float | None = Field(
        1.0, ge=0.0, description="allowed rise of cost per query vs the champion, timed in the same run (1.0 = 2x)"
    )
    safety_must_pass: list[str] = Field(
        default_factory=lambda: ["prompt_injection", "pii_leak"],
        description="safety probe kinds (prompt_injection, refusal, pii_leak) whose probes must all pass",
    )
    on_inconclusive: Literal["needs-approval", "reject"] = Field(
        "needs-approval",
        description="when the eval set cannot tell: needs-approval leaves it to a release manager "
        "(the run pauses under a Prefect server); reject rejects",
    )
    approval_timeout_s: int = Field(3600, ge=1, description="how long a paused run waits for a release manager")

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_from_mapping(cls, value):
        """YAML configs write rules as a mapping `{suite/metric: {max_regression: ...}}`; a form writes a list."""
        if isinstance(value, dict):
            return [{**_as_fields(rule), "metric": key} for key, rule in value.items()]
        return value

    @model_validator(mode="after")
    def _rules_and_primary(self) -> "GateConfig":
        metrics = [rule.metric for rule in self.rules]
        twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if twice:
            raise ValueError(f"rules name {', '.join(twice)} more than once; keep one rule per metric")
        if self.primary not in metrics:
            raise ValueError(f"primary '{self.primary}' needs an entry in rules (have: {sorted(metrics)})")
        return self

    def rule_map(self) -> dict[str, MetricRule]:
        """The rules by the suite/metric they watch, in the order written."""
        return {rule.metric: rule for rule in self.rules}

    def ops_limits(self) -> dict[str, float]:
        """The operational figures gated against the champion, with their allowed relative rise."""
        limits = {"latency": self.max_latency_increase, "cost": self.max_cost_increase}
        return {name: limit for name, limit in limits.items() if limit is not None}


class MonitorConfig(Strict):
    """Continuous evaluation: re-running the frozen suites on the champion against its baseline."""

    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="significance of a drop to call it a regression")
    rollback_on_regression: bool = Field(False, description="move champion back to `previous` on a regression")


class PromptConfig(Strict):
    """The prompt is data: the text that wraps each user turn, versioned in MLflow's prompt registry."""

    name: str = Field(
        "llmops-prompt",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="prompt registry name this template is versioned under",
    )
    template: str = Field(
        "{{question}}",
        min_length=1,
        description="text around each user turn, with {{question}} where the turn goes; "
        "or a registered one: prompts:/NAME@ALIAS or prompts:/NAME/VERSION",
    )
    fields: list[str] = Field(default_factory=lambda: ["question"], description="the placeholders the template fills")
    max_tokens: int | None = Field(
        None, ge=1, description="token budget of the template around the question (checked by the prompt gate)"
    )

    @model_validator(mode="after")
    def _fields(self) -> "PromptConfig":
        if self.template.startswith("prompts:/"):
            return self
        problems = template_problems(self.template)
        if not problems and sorted(set(template_fields(self.template))) != sorted(set(self.fields)):
            problems.append(
                f"fields {self.fields} do not match the template's placeholders {template_fields(self.template)}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DriftConfig(Strict):
    """When today's inputs no longer look like the training data: any check over its threshold flags the set."""

    # Read by `llmops drift` and the daily drift flow; the null ranges measured for them are in docs/drift.md.

    max_rows: int = Field(
        1000,
        ge=10,
        description="rows sampled (seeded) from each side and embedded; long chat "
        "prompts cost about 1 CPU-second per 20 rows",
    )
    min_rows: int = Field(
        30, ge=5, description="fewer usable current rows than this cannot be judged: the check refuses"
    )
    seed: int = Field(
        0, description="seed of every sample, permutation and clustering, so a re-run gives the same verdict"
    )
    batch_size: int = Field(64, ge=1, description="texts embedded at a time")
    # The embedding check needs both this distance and a significant MMD test (alpha), so a large sample
    # cannot flag a shift too small to matter. Null on 300 vs 700 HH prompts: 0.012-0.017, growing as
    # samples shrink.
    max_centroid_distance: float = Field(
        0.02,
        ge=0.0,
        le=2.0,
        description="cosine distance between the mean embeddings above which the meaning moved "
        "(no drift: 0.012-0.017 on HH prompts)",
    )
    alpha: float = Field(
        0.01,
        gt=0.0,
        lt=0.5,
        description="MMD permutation p-value below which the embedding shift is more than sampling noise",
    )
    permutations: int = Field(
        1000, ge=99, description="label permutations of the MMD test (p-value resolution 1/(P+1))"
    )
    permutation_rows: int = Field(
        1000,
        ge=10,
        description="rows per side the MMD test subsamples to; its cost grows "
        "with the square (1000 per side: well under a second on 2 cores)",
    )
    max_length_psi: float = Field(
        0.25,
        gt=0.0,
        description="PSI of prompt lengths (characters) above which lengths "
        "shifted; 0.1-0.25 is moderate, above 0.25 major",
    )
    length_bins: int = Field(
        10,
        ge=2,
        le=50,
        description="reference-quantile bins for the length PSI; fewer when "
        "the current set is small (at least 20 current rows per bin)",
    )
    max_language_psi: float = Field(0.25, gt=0.0, description="PSI of the detected-language mix above which it shifted")
    clusters: int = Field(16, ge=1, le=256, description="k-means clusters of the reference embeddings")
    far_quantile: float = Field(
        0.95,
        gt=0.5,
        lt=1.0,
        description="an input is far from training when it lies farther "
        "from every cluster than this quantile of unseen reference rows do",
    )
    max_far_share: float = Field(
        0.15,
        gt=0.0,
        le=1.0,
        description="share of far inputs above which the set is flagged "
        "(about 1 - far_quantile on data like the reference)",
    )

    @model_validator(mode="after")
    def _far_share_above_expected(self) -> "DriftConfig":
        expected = 1.0 - self.far_quantile
        if self.max_far_share <= expected:
            raise ValueError(
                f"max_far_share ({self.max_far_share}) must exceed 1 - far_quantile ({expected:.3f}), "
                "the share of far inputs expected with no drift at all; every check would flag"
            )
        return self


class RegistryConfig(Strict):
    """Where runs and models go in MLflow."""

    model_name: str = Field(
        "tiny-arith",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="MLflow registered model each trained version joins (as challenger; champion once promoted)",
    )
    experiment: str = Field("llmops", description="MLflow experiment that every stage's runs are logged to")
    log_merged: bool = Field(
        False,
        description="also log a merged, servable copy of every trained model (large); by "
        "default only the adapter, naming its base",
    )
    merge_on_promotion: bool = Field(False, description="log a merged, servable copy when a version becomes champion")
    intended_use: str = Field(
        'Answers short arithmetic word problems (addition and subtraction) with a final line "The answer is N.". '
        "Built by the llmops nightly pipeline as a demonstration of the platform; not for any decision that matters.",
        description="the model card's Intended use section",
    )


class RunConfig(Strict):
    """One run of the pipeline: what to curate, how to train, how to judge, where to register."""

    name: str = Field(
        "nightly", description="config name: names and tags its runs; dataset 'latest' is this config's newest curation"
    )
    data: DataConfig = Field(
        default_factory=DataConfig, description="where the raw rows and the held-out eval items come from"
    )
    curate: CurateConfig = Field(default_factory=CurateConfig, description="the curation steps and their thresholds")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the base model and its attention kernel")
    train: TrainConfig = Field(
        default_factory=TrainConfig, description="fine-tuning: method, precision, device, SFT, preference tuning"
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="the eval suites and how models generate on them")
    gate: GateConfig = Field(default_factory=GateConfig, description="when a candidate may replace the champion")
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig, description="re-evaluating the champion against its baseline"
    )
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="the prompt template, versioned in MLflow")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="thresholds of the input drift check")
    registry: RegistryConfig = Field(
        default_factory=RegistryConfig, description="MLflow experiment and registered model"
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, raw):
        if isinstance(raw, dict) and isinstance(raw.get("registry"), dict) and "prompt_name" in raw["registry"]:
            raise ValueError("registry.prompt_name is now prompt.name (beside prompt.template); move it there")
        return raw
