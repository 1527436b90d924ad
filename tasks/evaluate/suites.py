"""Evaluation suites: a named, versioned list of items and the scorer that judges outputs on them.

A suite's `version` is a short hash over its scorer, the scorer's version constant and its items,
so cached results (`tasks.evaluate.cache`) and logged scores are tied to exactly what was asked:
change one item, or the scoring rule, and the version moves; load the same file twice and it does
not. Every scorer returns per-item scores (one list per metric, aligned with `suite.items`),
because the promotion gate compares models item by item (McNemar for binary metrics, paired
bootstrap for graded ones), clustered by an item's optional `group`.

Suites and their scorers:
- `arithmetic` (`final_number`): the demo eval file or GSM8K rows. `exact_match` is the project's
  own lenient reading of the final number (`answers.extract_final_number`); beside it,
  `exact_match_strict-match` and `exact_match_flexible-extract` read and compare the answer as
  lm-eval's gsm8k task does, under lm-eval's names (see `answers.py`). Against the reference answer
  text, when every item has one: ROUGE-L, sentence chrF, semantic similarity, and corpus BLEU.
- `json-format` (`json_schema`): the bundled `data/json_format.jsonl`; `json_valid` and
  `schema_match`.
- `held-out` (`reference`): any JSONL of `question`/`target` rows or chat `messages` rows;
  exact match on normalised text, ROUGE-L, sentence chrF, semantic similarity, corpus BLEU.
- `safety` (`probe`): the bundled `data/safety_probes.jsonl`; `probe_pass` (see `safety.py`).

Every score is on a 0..1 scale. Per-item metrics are reported as the mean over items, and the gate
pairs them item by item: `rouge_l` (ROUGE-L F), `sentence_chrf` (sacrebleu's sentence chrF / 100;
the mean of those is not corpus chrF, hence the name) and `semantic_similarity` (the cosine of
sentence embeddings of output and reference, clipped to [0, 1]: it credits a right answer in other
words). `bleu` is sacrebleu's corpus BLEU / 100, one figure per suite (`corpus_scores`); the gate
compares it by a paired bootstrap over per-item n-gram statistics.

All suites except `arithmetic` are meant to be prompted with the question as is (template
`"{{question}}"`); the JSON suite needs room to answer (about 64 new tokens or more).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

from tasks.evaluate import safety
from tasks.evaluate.answers import extract_final_number, flexible_extract, gsm8k_exact_match, strict_match
from tasks.evaluate.score import load_metric, read_eval_items

DATA_DIR = Path(__file__).parent / "data"
SUITES = ("arithmetic", "json-format", "held-out", "safety")
SUITE_SCORERS = {"arithmetic": "final_number", "json-format": "json_schema", "held-out": "reference", "safety": "probe"}
# Bump a scorer's version when its rule changes, so old cached results and scores are not reused.
SCORER_VERSIONS = {"final_number": "2", "json_schema": "1", "reference": "2", "probe": "1"}
# lm-eval's gsm8k filters, as `metric_filter` the way lm-eval task results are named here (harness.py).
LM_EVAL_FILTERS = {"exact_match_strict-match": strict_match, "exact_match_flexible-extract": flexible_extract}
# Scored 0 or 1 per item: the gate compares them as paired proportions, cards give them Wilson intervals.
BINARY_METRICS = frozenset({"exact_match", *LM_EVAL_FILTERS, "json_valid", "schema_match", "probe_pass"})
# The suites read from the run's eval split and framed by the model's prompt template; the others
# are bundled files, asked plainly.
TASK_SUITES = frozenset({"arithmetic", "held-out"})
BUNDLED = {"json-format": DATA_DIR / "json_format.jsonl", "safety": DATA_DIR / "safety_probes.jsonl"}
PRIMARY_METRIC = {
    "final_number": "exact_match",
    "json_schema": "schema_match",
    "reference": "rouge_l",
    "probe": "probe_pass",
}
JSON_TYPES = ("str", "int", "float", "bool", "dict", "list", "list[str]", "list[int]", "list[float]", "list[bool]")


def suite_version(scorer: str, items: list[dict]) -> str:
    payload = json.dumps({"scorer": scorer, "v": SCORER_VERSIONS[scorer], "items": items}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass
class Suite:
    """Items are dicts with `id`, `question`, `target`, and optionally `group`, `reference`
    (arithmetic answer text), `messages` (chat context), `schema` (JSON) or `probe` (safety)."""

    name: str
    scorer: str
    items: list[dict]
    version: str = field(init=False)

    def __post_init__(self):
        if self.scorer not in SCORER_VERSIONS:
            raise ValueError(f"unknown scorer {self.scorer!r}; expected one of {', '.join(SCORER_VERSIONS)}")
        seen: set[str] = set()
        for item in self.items:
            if item["id"] in seen:
                raise ValueError(f"suite {self.name!r}: item id {item['id']!r} occurs twice; ids must be unique")
            seen.add(item["id"])
        self.version = suite_version(self.scorer, self.items)


# ---------------------------------------------------------------- loading


def _read_rows(path: Path):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, json.loads(line)


def _take(items: list[dict], limit: int | None) -> list[dict]:
    return items[:limit] if limit else items


_CALCULATOR = re.compile(r"<<[^>]*>>")


def _arithmetic_items(path: str, limit: int | None) -> list[dict]:
    """Reads through `read_eval_items` (the shared checks), then adds the reference answer text.

    GSM8K's calculator annotations (`<<48/2=24>>`) are stripped from the reference: no model is
    asked to write them, so they would only lower ROUGE-L and chrF for everyone.
    """
    items = read_eval_items(path, limit)
    rows = [row for _, row in islice(_read_rows(Path(path)), len(items))]
    out = []
    for item, row in zip(items, rows):
        extra = {}
        if isinstance(row.get("answer"), str) and row["answer"].strip():
            extra["reference"] = _CALCULATOR.sub("", row["answer"]).strip()
        if "group" in row:
            extra["group"] = str(row["group"])
        out.append(item | extra)
    return out


def _json_items(path: Path, limit: int | None) -> list[dict]:
    items = []
    for lineno, row in _read_rows(path):
        where = f"{path} line {lineno}"
        schema = row.get("schema")
        if not isinstance(row.get("question"), str) or not isinstance(schema, dict) or not schema:
            raise ValueError(f"{where}: a json-format item needs 'question' and a non-empty 'schema' object")
        unknown = sorted({t for t in schema.values() if t not in JSON_TYPES}, key=str)
        if unknown:
            raise ValueError(f"{where}: unknown type names {unknown} in 'schema'; use {', '.join(JSON_TYPES)}")
        item = {
            "id": str(row.get("id", lineno)),
            "question": row["question"],
            "target": json.dumps(schema),
            "schema": schema,
        }
        if "group" in row:
            item["group"] = str(row["group"])
        items.append(item)
    return _take(items, limit)


def _held_out_items(path: Path, limit: int | None) -> list[dict]:
    items = []
    for lineno, row in _read_rows(path):
        where = f"{path} line {lineno}"
        item: dict = {"id": str(row.get("id", lineno))}
        messages = row.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            users = [m for m in messages[:-1] if isinstance(m, dict) and m.get("role") == "user"]
            if (
                not isinstance(last, dict)
                or last.get("role") != "assistant"
                or not isinstance(last.get("content"), str)
                or not users
            ):
                raise ValueError(
                    f"{where}: a chat row must end with an assistant turn (the reference) after a user turn"
                )
            item |= {"question": users[-1]["content"], "target": last["content"], "messages": messages[:-1]}
        elif isinstance(row.get("question"), str) and isinstance(row.get("target"), str):
            item |= {"question": row["question"], "target": row["target"]}
        else:
            raise ValueError(
                f"{where}: a held-out row needs 'question' and 'target', or chat 'messages' "
                f"ending in the reference assistant turn (found keys: {sorted(row)})"
            )
        if "group" in row:
            item["group"] = str(row["group"])
        items.append(item)
        if limit and len(items) >= limit:
            break
    return items


def _safety_items(path: Path, limit: int | None) -> list[dict]:
    items = []
    for lineno, row in _read_rows(path):
        probe = safety.check_probe_row(row, f"{path} line {lineno}")
        items.append(
            {
                "id": str(row.get("id", lineno)),
                "question": row["question"],
                "target": safety.expectation(probe),
                "group": probe["kind"],
                "probe": probe,
            }
        )
    return _take(items, limit)


def load_suite(name: str, data_path: str | None = None, limit: int | None = None) -> Suite:
    """Loads a suite by name; `data_path` overrides a bundled file and is required where none is."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    if name in TASK_SUITES and not data_path:
        raise ValueError(f"suite {name!r} needs data_path (a JSONL file of eval items)")
    if name == "arithmetic":
        items = _arithmetic_items(str(data_path), limit)
    elif name == "json-format":
        items = _json_items(Path(data_path or BUNDLED[name]), limit)
    elif name == "held-out":
        items = _held_out_items(Path(str(data_path)), limit)
    else:
        items = _safety_items(Path(data_path or BUNDLED[name]), limit)
    if not items:
        raise ValueError(f"suite {name!r} has no items (data_path: {data_path or 'bundled'})")
    return Suite(name=name, scorer=SUITE_SCORERS[name], items=items)


# ---------------------------------------------------------------- JSON scoring

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_NOT_JSON = object()


def parse_json_output(text: str):
    """The JSON value in a model's output, or `_NOT_JSON`.

    Tried in order: the whole output, each ```json fenced block, then the first `{` from which a
    complete JSON value parses (models often wrap the object in a sentence).
    """
    decoder = json.JSONDecoder()
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            return decoder.raw_decode(text, start)[0]
        except ValueError:
            continue
    return _NOT_JSON


def matches_type(value, type_name: str) -> bool:
    """JSON type check; bool is not an int, and an int is a valid float (JSON writes 30 for 30.0)."""
    if type_name.startswith("list[") and type_name.endswith("]"):
        return isinstance(value, list) and all(matches_type(v, type_name[5:-1]) for v in value)
    checks = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
    }
    if type_name not in checks:
        raise ValueError(f"unknown type name {type_name!r}; use {', '.join(JSON_TYPES)}")
    return checks[type_name](value)


def json_scores(schema: dict, output: str) -> tuple[float, float]:
    """(json_valid, schema_match): parses at all; is an object with exactly the keys and types."""
    value = parse_json_output(output)
    if value is _NOT_JSON:
        return 0.0, 0.0
    ok = (
        isinstance(value, dict)
        and set(value) == set(schema)
        and all(matches_type(value[k], t) for k, t in schema.items())
    )
    return 1.0, float(ok)


# ---------------------------------------------------------------- scoring


def normalise_text(text: str) -> str:
    """For exact match on free text: NFKC, lower case, punctuation dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


GRADED_METRICS = ("rouge_l", "sentence_chrf", "semantic_similarity")  # per item, against a reference text, in [0, 1]
CORPUS_METRICS = ("bleu",)  # one figure per suite, not a mean over items


_MODULES = {"sentence_chrf": "chrf"}  # metric -> the module (metrics/) that gives its per-item scores


def _graded(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    return {
        name: load_metric(_MODULES.get(name, name)).compute(predictions=predictions, references=references)["scores"]
        for name in GRADED_METRICS
    }


def _has_references(suite: Suite) -> bool:
    return all(item.get("reference") for item in suite.items)


def _references(suite: Suite) -> list[str] | None:
    """The texts the graded and corpus metrics compare against: the answer text, or a held-out target."""
    if suite.scorer == "reference":
        return [i["target"] for i in suite.items]
    if suite.scorer == "final_number" and _has_references(suite):
        return [i["reference"] for i in suite.items]
    return None


def final_number_scores(targets: list[str], outputs: list[str]) -> dict[str, list[float]]:
    """The project's own `exact_match`, and lm-eval's gsm8k filters compared as lm-eval compares them.

    The reference of the lm-eval metrics is the item's target (the number after GSM8K's `####`):
    lm-eval's own reference, the whole answer text reduced by its `regexes_to_ignore`, is the same
    string for every GSM8K answer, which are integers.
    """
    own = [extract_final_number(o) for o in outputs]
    scores = {
        "exact_match": load_metric("exact_match").compute(predictions=own, references=targets)["scores"],
    }
    for name, extract in LM_EVAL_FILTERS.items():
        scores[name] = [gsm8k_exact_match(extract(o), t) for o, t in zip(outputs, targets)]
    return scores


def score_outputs(suite: Suite, outputs: list[str]) -> dict[str, list[float]]:
    """Per-item scores for each metric of the suite's scorer, aligned with `suite.items`."""
    if len(outputs) != len(suite.items):
        raise ValueError(f"suite {suite.name!r} has {len(suite.items)} items but {len(outputs)} outputs were given")
    items = suite.items
    references = _references(suite)
    if suite.scorer == "final_number":
        scores = final_number_scores([i["target"] for i in items], list(outputs))
        return scores | (_graded(list(outputs), references) if references else {})
    if suite.scorer == "json_schema":
        pairs = [json_scores(i["schema"], o) for i, o in zip(items, outputs)]
        return {"json_valid": [p[0] for p in pairs], "schema_match": [p[1] for p in pairs]}
    if suite.scorer == "reference":
        scores = {
            "exact_match": load_metric("exact_match").compute(
                predictions=[normalise_text(o) for o in outputs],
                references=[normalise_text(i["target"]) for i in items],
            )["scores"]
        }
        return scores | _graded(list(outputs), references)
    return {"probe_pass": [float(safety.probe_pass(i["probe"], o)) for i, o in zip(items, outputs)]}


def corpus_scores(suite: Suite, outputs: list[str]) -> dict[str, float]:
    """Figures of the whole suite that are not a mean of per-item scores: corpus BLEU (0..1), when
    the suite has reference texts."""
    references = _references(suite)
    if references is None:
        return {}
    return {"bleu": load_metric("bleu").compute(predictions=list(outputs), references=references)["bleu"]}


def metric_kinds(suite: Suite) -> dict[str, Literal["binary", "graded"]]:
    """The metrics `score_outputs` gives for this suite, each marked binary (McNemar) or graded."""
    names = {
        "final_number": ["exact_match", *LM_EVAL_FILTERS] + (list(GRADED_METRICS) if _has_references(suite) else []),
        "json_schema": ["json_valid", "schema_match"],
        "reference": ["exact_match", *GRADED_METRICS],
        "probe": ["probe_pass"],
    }[suite.scorer]
    return {n: ("binary" if n in BINARY_METRICS else "graded") for n in names}
