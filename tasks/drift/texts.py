"""The texts a drift check compares: the prompt a model is given, from a reference set and a current one.

Drift is about a model's inputs, so each row contributes only what the model is asked: a
preference row its `prompt`, a chat row every turn before its final answer (rendered as
"Human: …" / "Assistant: …" lines when there is more than one, the way `tasks.data.formats`
renders a preference prompt, so both kinds of training row look alike), a text row its text.
Production logs rarely hold answers, so a chat that ends on a user turn is taken whole.

The reference is what the model was trained on: a curated `dataset-<hash>/` folder (its
sft.jsonl and pref.jsonl), a curation output folder holding one, the hash (or a prefix of it) of a
dataset curated under $LLMOPS_HOME, `latest` for the newest of those, or any file the readers in
`tasks.data.read` take, in any layout `tasks.data.formats` knows. Every row read is used,
sampled out, or dropped with its reason in the set's ledger; nothing disappears unaccounted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

from core.errors import UserError
from tasks.data.read import read_rows
from tasks.data.records import Ledger, Row
from tasks.data.validate import normalize_text

DATASET_FILES = ("sft.jsonl", "pref.jsonl")
MIN_HASH_PREFIX = 6
_LABELS = {"user": "Human", "assistant": "Assistant", "system": "System"}


@dataclass
class TextSet:
    """The sampled prompt texts of one side, and how every row read was accounted for."""

    name: str
    paths: list[str]
    texts: list[str]
    formats: dict[str, dict[str, int]]  # input path -> rows per format
    read: int
    usable: int
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "paths": self.paths,
            "formats": self.formats,
            "read": self.read,
            "usable": self.usable,
            "used": len(self.texts),
            "sampled_out": self.usable - len(self.texts),
            "dropped": self.dropped,
        }


def prompt_text(row: Row) -> str | None:
    """What the model is asked in this row, or None when the row holds no usable prompt."""
    if row.kind == "pref":
        text = row.data.get("prompt")
        return text if isinstance(text, str) else None
    if row.kind == "text":
        text = row.data.get("text")
        return text if isinstance(text, str) else None
    turns = []
    for m in row.data.get("messages") or []:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            return None
        turns.append((m["role"], m["content"]))
    if turns and turns[-1][0] == "assistant":
        turns = turns[:-1]
    if not any(role == "user" for role, _ in turns):
        return None
    if len(turns) == 1:
        return turns[0][1]
    return "\n".join(f"{_LABELS.get(role, role.title())}: {text}" for role, text in turns)


def resolve_reference(reference: str, curated_root: Path | None, what: str = "reference") -> list[Path]:
    """The files a reference names; raises UserError with what to pass instead.

    Without `curated_root` (where `llmops curate` writes, $LLMOPS_HOME/data/curated) only a file
    or folder is accepted: hashes and `latest` name curated datasets.
    """
    path = Path(reference).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return _dataset_files(path, what, reference)
    if curated_root is None:  # a current set: only a file or folder can name it
        raise UserError(
            f"{what} {reference}",
            "no such file or folder",
            "pass a JSONL (.jsonl, .jsonl.gz) or Parquet file of the inputs to check",
        )
    candidates = sorted(curated_root.glob("*/dataset-*")) if curated_root.is_dir() else []
    where = f"under {curated_root}"
    if reference == "latest":
        if not candidates:
            raise UserError(
                f"{what} latest",
                f"no curated dataset found {where}",
                "run `llmops curate` first, or pass a dataset folder or a JSONL file",
            )
        return _dataset_files(max(candidates, key=lambda p: p.stat().st_mtime), what, reference)
    key = reference.lower().removeprefix("dataset-")
    if len(key) >= MIN_HASH_PREFIX and all(c in "0123456789abcdef" for c in key):
        matches = sorted(
            {p.name: p for p in candidates if p.name.removeprefix("dataset-").startswith(key[:16])}.values()
        )
        if len(matches) == 1:
            return _dataset_files(matches[0], what, reference)
        if len(matches) > 1:
            raise UserError(
                f"{what} {reference}",
                f"matches {len(matches)} curated datasets ({', '.join(p.name for p in matches[:4])})",
                "give more characters of the hash",
            )
        raise UserError(
            f"{what} {reference}",
            f"no file or folder of that name, and no curated dataset with that hash {where}",
            "check the hash with the curate run's llmops.dataset_hash tag, or pass a folder or file",
        )
    raise UserError(
        f"{what} {reference}",
        "no such file or folder",
        "pass a dataset-<hash> folder, a JSONL (.jsonl, .jsonl.gz) or Parquet file, a dataset hash, or 'latest'",
    )


def _dataset_files(folder: Path, what: str, reference: str) -> list[Path]:
    """A dataset folder's training files; a curation output folder stands for the one dataset in it."""
    files = [folder / name for name in DATASET_FILES if (folder / name).is_file()]
    if files:
        return files
    inner = sorted(folder.glob("dataset-*/"))
    if len(inner) == 1:
        return _dataset_files(inner[0], what, reference)
    if (folder / "state.json").exists() or (folder / "dataset_dict.json").exists():
        return [folder]  # a datasets save_to_disk folder: the readers take it as is
    raise UserError(
        f"{what} {reference}",
        f"is a folder without {' or '.join(DATASET_FILES)}"
        + (f" (it holds {len(inner)} dataset folders)" if inner else ""),
        "pass one dataset-<hash> folder written by `llmops curate`, or a file",
    )


def _prompts(paths: list[Path], ledger: Ledger, what: str, reference: str) -> Iterator[str]:
    def rows_of(path: Path) -> Iterator[Row]:
        if path.is_file() and path.stat().st_size == 0:
            return iter(())  # a dataset without preference pairs has an empty pref.jsonl
        try:
            return read_rows(path, ledger)
        except ValueError as err:  # no known layout, or a file type the readers do not take
            raise UserError(
                f"{what} {reference}",
                f"cannot be read as rows ({err})".replace("\n", " "),
                "pass a JSONL, JSONL.gz or Parquet file in one of the layouts `llmops curate --help` lists",
            ) from None

    for row in chain.from_iterable(rows_of(p) for p in paths):
        raw = prompt_text(row)
        text = normalize_text(raw) if raw is not None else ""
        if raw is None:
            ledger.drop(row, row.id, "no_prompt", "no user turn, prompt or text field to compare")
        elif not text:
            ledger.drop(row, row.id, "empty_prompt", "the prompt is blank")
        else:
            yield text


def sample(items: Iterable[str], k: int, seed: int) -> tuple[list[str], int]:
    """(a uniform sample of at most k items in their original order, how many there were), in one pass.

    Reservoir sampling: a reference far larger than memory is sampled without being held, and
    the same seed picks the same rows every day, so day-to-day changes come from the current set.
    """
    rng = random.Random(seed)
    reservoir: list[tuple[int, str]] = []
    n = 0
    for n, item in enumerate(items, 1):
        if len(reservoir) < k:
            reservoir.append((n, item))
        else:
            j = rng.randrange(n)
            if j < k:
                reservoir[j] = (n, item)
    return [item for _, item in sorted(reservoir)], n


def read_texts(
    source: str, max_rows: int, seed: int, curated_root: Path | None = None, what: str = "reference"
) -> TextSet:
    """The prompt texts of a reference or current set, sampled down to `max_rows`."""
    paths = resolve_reference(source, curated_root, what)
    ledger = Ledger()
    texts, usable = sample(_prompts(paths, ledger, what, source), max_rows, seed)
    formats = {p: dict(c) for p, c in ledger.formats.items()}  # plain dicts: asdict() rebuilds a Counter from its items
    return TextSet(
        name=what,
        paths=[str(p) for p in paths],
        texts=texts,
        formats=formats,
        read=ledger.read,
        usable=usable,
        dropped=dict(sorted(ledger.dropped.items())),
    )
