"""Synthetic data: a teacher model rewrites seed instructions into new rows, which then face the same filters.

Each operation is a prompt template (`synth-<op>`; a flow keeps them in MLflow's prompt registry), so
every synthetic row can name the exact text that asked for it (`data["synthetic"]["template"]`):

- `rephrase`: the first user turn asked in other words; the seed's answer is kept, since the
  question has not changed.
- `harder` / `simpler`: a new task, so the old answer no longer fits. The teacher is asked for a
  whole pair in a fixed format, `Instruction: …` then a line `Answer: …`; a reply that does not
  parse is dropped as `synthetic_unparsable`, never patched or lost silently.

The teacher is any local transformers causal LM (`local:<folder or hub name>`) or any
OpenAI-compatible endpoint (`http:<base_url>`, key read from the env var `api_key_env` names).

Accounting: every teacher reply is one row read (`ledger.read += 1` as it arrives), then either
yielded or dropped with a reason (`synthetic_empty`, `synthetic_unchanged`, `synthetic_unparsable`),
so the run's ledger still balances. The yielded rows are meant to go through the curate steps like
any read row; `synthesize` puts them after the real rows, so dedup keeps a real row over a variant
that copies it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from typing import Iterable, Iterator, Protocol

from configs.synthetic import OPERATIONS, SyntheticConfig
from tasks.data.records import Ledger, Row
from tasks.data.validate import normalize_text

log = logging.getLogger(__name__)


_PAIR_FORMAT = (
    "Reply in exactly this format and nothing else:\n"
    "Instruction: <the new instruction>\n"
    "Answer: <the answer to the new instruction>\n\n"
    "Instruction: {{instruction}}\n"
    "Answer: {{answer}}"
)
TEMPLATES: dict[str, str] = {
    "rephrase": (
        "Rewrite the following instruction so it asks the same thing in different words. "
        "Reply with the new instruction only.\n\nInstruction: {{instruction}}"
    ),
    "harder": (
        "Write a harder version of the following task: it should need more steps or more care, "
        "but stay self-contained and have one correct answer. " + _PAIR_FORMAT
    ),
    "simpler": (
        "Write a simpler version of the following task: fewer steps and plainer words, still "
        "self-contained with one correct answer. " + _PAIR_FORMAT
    ),
}

_PAIR = re.compile(r"instruction:[ \t]*(?P<instruction>.*?)\s*\n\s*answer:[ \t]*(?P<answer>.*)", re.I | re.S)
_LABEL = re.compile(r"^(?:new |rewritten )?instruction:\s*", re.I)


# ------------------------------------------------------------------------------ templates


def local_template_versions(operations: Iterable[str] = OPERATIONS) -> dict[str, str]:
    """Each template named by a short hash of its text, for runs without a prompt registry.

    A flow registers the templates in MLflow (`registry.prompts.register_synthetic_templates`) and
    passes those versions instead; either way the recorded version names exactly the text used.
    """
    import hashlib

    return {op: "sha-" + hashlib.sha256(TEMPLATES[op].encode()).hexdigest()[:10] for op in operations}


def fill(template: str, instruction: str, answer: str) -> str:
    return template.replace("{{instruction}}", instruction).replace("{{answer}}", answer)


# ------------------------------------------------------------------------------- teachers


class Teacher(Protocol):
    def complete(self, prompts: list[str]) -> list[str]:
        """One reply per prompt, in order."""
        ...


class TeacherError(RuntimeError):
    pass


class LocalTeacher:
    """A local transformers causal LM, sampled in batches with a seed.

    The RNG is seeded per call from (seed, the prompts), inside `torch.random.fork_rng`, so the
    same batch gives the same replies in any run and the caller's RNG state is left alone.
    """

    def __init__(
        self, model_path: str, *, max_new_tokens: int = 96, temperature: float = 0.7, seed: int = 0, batch_size: int = 8
    ):
        from tasks.model.load import Placement, cuda_available, load_for_generation

        placement = Placement(device="cuda", precision="bf16") if cuda_available() else Placement()
        self.model, self.tokenizer = load_for_generation(model_path, placement)
        self.max_new_tokens, self.temperature, self.seed, self.batch_size = (
            max_new_tokens,
            temperature,
            seed,
            batch_size,
        )

    def _render(self, prompt: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        return prompt

    def complete(self, prompts: list[str]) -> list[str]:
        import torch

        device = self.model.device
        replies: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            enc = self.tokenizer(
                [self._render(p) for p in chunk], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            sample = self.temperature > 0
            kwargs = {"do_sample": True, "temperature": self.temperature} if sample else {"do_sample": False}
            call_seed = zlib.crc32("\0".join(chunk).encode("utf-8"), self.seed & 0xFFFFFFFF)
            with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), torch.no_grad():
                torch.manual_seed(call_seed)
                out = self.model.generate(
                    **enc, max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **kwargs
                )
            for row in out[:, enc["input_ids"].shape[1] :]:
                replies.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return replies


class HttpTeacher:
    """An OpenAI-compatible chat endpoint, one request per prompt, through the standard library.

    Retries with exponential backoff (or the server's Retry-After) only on what can pass: HTTP 429,
    5xx, and network errors. Each copy of a prompt within one call gets its own `seed` (seed,
    seed+1, …), so repeated variants of one seed differ while a rerun asks the same questions.
    """

    RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        max_new_tokens: int = 96,
        temperature: float = 0.7,
        seed: int = 0,
        timeout_s: float = 60,
        max_retries: int = 3,
        backoff_s: float = 1.0,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self._api_key = model, api_key
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s

    def complete(self, prompts: list[str]) -> list[str]:
        seen: Counter[str] = Counter()
        replies = []
        for prompt in prompts:
            replies.append(self._post(prompt, self.seed + seen[prompt]))
            seen[prompt] += 1
        return replies

    def _post(self, prompt: str, seed: int) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature,
                "max_tokens": self.max_new_tokens,
                "seed": seed,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2**attempt
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as err:  # before URLError: it is a subclass
                detail = err.read().decode("utf-8", "replace")[:300]
                if err.code not in self.RETRY_STATUS:
                    raise TeacherError(
                        f"POST {self.url} returned HTTP {err.code}: {detail!r}; check the base URL, "
                        f"the model name ({self.model!r}) and the API key"
                    ) from None
                last = f"HTTP {err.code}: {detail!r}"
                retry_after = (err.headers.get("Retry-After") or "").strip()
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), 60.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            if attempt < self.max_retries:
                log.warning(
                    "POST %s failed (%s); retry %d of %d in %.1f s", self.url, last, attempt + 1, self.max_retries, wait
                )
                time.sleep(wait)
        else:
            raise TeacherError(f"POST {self.url} failed after {self.max_retries + 1} attempts; last error: {last}")
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise TeacherError(
                f"POST {self.url} answered something that is not an OpenAI chat completion "
                f"({type(err).__name__}: {err}): {raw[:300]!r}"
            ) from None
        return (content or "").strip()


def make_teacher(cfg: SyntheticConfig) -> Teacher:
    kind, _, target = cfg.teacher.partition(":")
    if kind == "local":
        return LocalTeacher(target, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed)
    key = os.environ.get(cfg.api_key_env)
    if not key:  # local OpenAI-compatible servers (vLLM, llama.cpp) often need none
        log.warning("$%s is not set: calling %s without an API key", cfg.api_key_env, target)
    return HttpTeacher(
        target,
        cfg.api_model or "",
        key,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
    )


# ------------------------------------------------------------------------------ variants


def _first_turns(row: Row) -> tuple[int, str, str] | None:
    """(index of the first user turn, its text, the assistant reply after it), or None if the chat has none."""
    messages = row.data.get("messages") or []
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            answer = next((n.get("content") for n in messages[i + 1 :] if n.get("role") == "assistant"), None)
            if isinstance(m.get("content"), str) and isinstance(answer, str):
                return i, m["content"], answer
            return None
    return None


def _sample_seeds(seed_rows: Iterable[Row], cfg: SyntheticConfig, counts: Counter[str]) -> Iterator[Row]:
    """Usable sft seeds in input order; with `max_seeds`, a seeded reservoir sample of that many."""

    def usable_rows() -> Iterator[Row]:
        for row in seed_rows:
            if row.kind == "sft" and _first_turns(row) is not None:
                yield row
            else:
                counts["seeds_skipped"] += 1

    usable = usable_rows()
    if cfg.max_seeds is None:
        yield from usable
        return
    rng = random.Random(cfg.seed)
    reservoir: list[tuple[int, Row]] = []
    for n, row in enumerate(usable):
        if n < cfg.max_seeds:
            reservoir.append((n, row))
        elif (j := rng.randint(0, n)) < cfg.max_seeds:
            reservoir[j] = (n, row)
    yield from (row for _, row in sorted(reservoir, key=lambda t: t[0]))


def _parse(op: str, reply: str) -> tuple[str, str | None] | str:
    """(instruction, answer or None to keep the seed's), or the drop reason."""
    reply = reply.strip()
    if not reply:
        return "synthetic_empty"
    if op == "rephrase":
        text = _LABEL.sub("", reply).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1].strip()
        return (normalize_text(text), None) if normalize_text(text) else "synthetic_empty"
    match = _PAIR.search(reply)
    if match is None:
        return "synthetic_unparsable"
    instruction, answer = normalize_text(match["instruction"]), normalize_text(match["answer"])
    return (instruction, answer) if instruction and answer else "synthetic_empty"


def _variant(
    seed: Row,
    op: str,
    k: int,
    instruction: str,
    answer: str | None,
    cfg: SyntheticConfig,
    versions: dict[str, int | str],
) -> Row:
    i, _, _ = _first_turns(seed)  # type: ignore[misc]
    messages = seed.data["messages"]
    if answer is None:  # rephrase: the rest of the chat stays as it was
        new = [*messages[:i], {**messages[i], "content": instruction}, *messages[i + 1 :]]
    else:  # a new task: system turns before it stay, the old conversation does not
        new = [*messages[:i], {"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
    marker = {"teacher": cfg.teacher, "operation": op, "template": f"synth-{op}/{versions[op]}", "seed_id": seed.id}
    return Row(
        id=f"syn-{op}-{seed.id}-{k}", kind="sft", data={"messages": new, "synthetic": marker}, source="synthetic"
    )


def generate_variants(
    seed_rows: Iterable[Row],
    cfg: SyntheticConfig,
    teacher: Teacher,
    template_versions: dict[str, int | str],
    ledger: Ledger,
    counts: Counter[str] | None = None,
    *,
    batch_size: int = 16,
) -> Iterator[Row]:
    """Yields the teacher's variants of each sft seed (`variants_per_seed` per operation), in seed order.

    Every reply counts as one row read on `ledger`, then is yielded or dropped with its reason.
    `counts` receives: seeds, seeds_skipped (not sft, or no user turn with an answer after it),
    generated, yielded, and one entry per drop reason. `template_versions` names each
    template's version (registry versions, or `local_template_versions()`), recorded on each row.
    """
    missing = [op for op in cfg.operations if op not in template_versions]
    if missing:
        raise ValueError(f"no template version for {missing}; pass local_template_versions() or the registry's")
    counts = Counter() if counts is None else counts

    def flush(jobs: list[tuple[Row, str, int, str]]) -> Iterator[Row]:
        replies = teacher.complete([prompt for *_, prompt in jobs])
        if len(replies) != len(jobs):
            raise TeacherError(f"the teacher returned {len(replies)} replies for {len(jobs)} prompts")
        for (seed, op, k, _), reply in zip(jobs, replies):
            ledger.read += 1
            counts["generated"] += 1
            parsed = _parse(op, reply)
            marker = {"teacher": cfg.teacher, "operation": op, "seed_id": seed.id, "reply": reply}
            row_id = f"syn-{op}-{seed.id}-{k}"
            if isinstance(parsed, str):
                counts[parsed] += 1
                ledger.drop(marker, row_id, parsed, f"{op} of {seed.id}")
                continue
            instruction, answer = parsed
            if instruction.lower() == normalize_text(_first_turns(seed)[1]).lower():  # type: ignore[index]
                counts["synthetic_unchanged"] += 1
                ledger.drop(marker, row_id, "synthetic_unchanged", f"{op} of {seed.id} repeats its instruction")
                continue
            counts["yielded"] += 1
            yield _variant(seed, op, k, instruction, answer, cfg, template_versions)

    jobs: list[tuple[Row, str, int, str]] = []
    for seed in _sample_seeds(seed_rows, cfg, counts):
        counts["seeds"] += 1
        _, instruction, answer = _first_turns(seed)  # type: ignore[misc]
        for op in cfg.operations:
            prompt = fill(TEMPLATES[op], instruction, answer)
            jobs += [(seed, op, k, prompt) for k in range(cfg.variants_per_seed)]
        if len(jobs) >= batch_size:  # a seed's jobs share one call, so its copies get distinct seeds
            yield from flush(jobs)
            jobs = []
    if jobs:
        yield from flush(jobs)


def synthesize(
    seed_rows: Iterable[Row],
    existing_rows: Iterable[Row],
    cfg: SyntheticConfig,
    ledger: Ledger,
    *,
    teacher: Teacher | None = None,
    template_versions: dict[str, int | str] | None = None,
    counts: Counter[str] | None = None,
) -> Iterator[Row]:
    """The existing rows unchanged, then (when enabled) the variants of `seed_rows`, for the curate steps.

    Variants come last so that dedup, which keeps the first of a cluster, prefers a real row. The
    teacher is loaded only when the stream reaches the variants.
    `ledger` must be the run's `Ledger` itself: variants add to its `read`.
    """
    yield from existing_rows
    if not cfg.enabled:
        return
    versions = template_versions if template_versions is not None else local_template_versions(cfg.operations)
    yield from generate_variants(seed_rows, cfg, teacher or make_teacher(cfg), versions, ledger, counts)
