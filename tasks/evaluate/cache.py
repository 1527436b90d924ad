"""Per-item evaluation results that survive a crash: a run that dies at item 900 of 1,000 resumes there.

Results live in one append-only JSONL file per (model, suite version):
`root/<model_key>/<suite name>@<suite version>.jsonl`. Each batch of records is written, flushed
and fsynced before generation moves on, so at most the batch in flight is lost. A write torn by a
crash can only be the file's last line; opening the cache cuts such a tail off. The key names the
model by its bytes, not its path, so a retrained model never reuses an old model's answers, and
the suite version changes with any item or scoring rule, so edited suites start fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from core.locks import file_lock
from tasks.evaluate.suites import Suite

MODEL_KEY_VERSION = "2"  # 2: adapter_config.json hashed in a canonical form (see _file_bytes)
# Files hashed into the model key: weights, configs, tokenizer files and the chat template, the
# things that change what a model generates. README files, logs and checkpoint sub-folders are not.
KEY_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".jinja", ".model", ".txt", ".tiktoken")
# Reading multi-GB shards on every evaluation costs minutes; above this size a file counts by its
# name, size and modification time instead. A file rewritten in place with the same size and
# mtime would then keep its key: a risk accepted for files that are written once by a trainer.
BIG_FILE_BYTES = 512 * 1024**2
# peft writes `target_modules` from a Python set, so its order changes with the process's hash seed:
# two byte-identical retrains got different keys, missed each other's cached answers, and looked
# like different models to the gate. These lists are sets; the key reads them sorted.
UNORDERED_ADAPTER_FIELDS = ("target_modules", "modules_to_save", "exclude_modules")


def _file_bytes(path: Path) -> bytes | None:
    """The bytes a key reads for a file whose raw bytes vary without a change in meaning; else None."""
    if path.name != "adapter_config.json":
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    for name in UNORDERED_ADAPTER_FIELDS:
        if isinstance(config.get(name), list):
            config[name] = sorted(config[name], key=str)
    return json.dumps(config, sort_keys=True).encode()


def model_key(model_dir: str | Path) -> str:
    """A short sha256 over the top-level weight/config files of a model or adapter folder.

    For an adapter (`adapter_config.json`), the key of its local base folder is folded in too,
    since the same adapter on a different base generates different text; a base that is not a
    local folder (a hub name) counts by its name.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in KEY_SUFFIXES)
    if not files:
        raise ValueError(f"{folder} holds no weight or config files ({', '.join(KEY_SUFFIXES)}); is it a model folder?")
    digest = hashlib.sha256(f"model-key-v{MODEL_KEY_VERSION}".encode())
    for path in files:
        stat = path.stat()
        canonical = _file_bytes(path)
        if canonical is not None:
            digest.update(f"\0{path.name}\0{len(canonical)}\0".encode() + canonical)
            continue
        digest.update(f"\0{path.name}\0{stat.st_size}\0".encode())
        if stat.st_size > BIG_FILE_BYTES:
            digest.update(f"mtime:{stat.st_mtime_ns}".encode())
            continue
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    adapter_cfg = folder / "adapter_config.json"
    if adapter_cfg.exists():
        base = json.loads(adapter_cfg.read_text()).get("base_model_name_or_path") or ""
        base_key = model_key(base) if base and Path(base).is_dir() else base
        digest.update(f"\0base:{base_key}".encode())
    return digest.hexdigest()[:16]


class ItemCache:
    """Finished items of one model on one suite; records are dicts with at least an `id`.

    The records are answers (the output and its token counts), never timings: a time measured in
    one run says nothing about the load of the next, so evaluate.run times what it generates."""

    def __init__(self, root: Path, model_key: str, suite: Suite):
        self.suite = suite
        self.model_key = model_key
        self.path = Path(root) / model_key / f"{suite.name}@{suite.version}.jsonl"
        self._ids = {item["id"] for item in suite.items}
        self._records: dict[str, dict] = {}
        if self.path.exists():
            with file_lock(self.path):  # a process sharing this home may be appending: never read half a batch
                self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        # Records never contain a raw newline (json.dumps escapes it), so everything after the last
        # newline is a write the crash cut short; every complete line before it must parse.
        good_end = data.rfind(b"\n") + 1
        for n, line in enumerate(data[:good_end].split(b"\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(f"{self.path} line {n} is not JSON; delete the file to re-run this suite") from None
            self._records[record["id"]] = record
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def done_ids(self) -> set[str]:
        return set(self._records)

    def get(self, item_id: str) -> dict | None:
        return self._records.get(item_id)

    def pending_items(self) -> list[dict]:
        """Suite items without a result yet, in suite order: what a resumed run still has to do."""
        return [item for item in self.suite.items if item["id"] not in self._records]

    def put_many(self, records: list[dict]) -> None:
        """Appends one batch and makes it durable (flush + fsync) before returning."""
        for record in records:
            if record.get("id") not in self._ids:
                raise ValueError(f"record id {record.get('id')!r} is not an item of suite {self.suite.name!r}")
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path), open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())
        for record in records:
            self._records[record["id"]] = record

    def results(self) -> list[dict]:
        """All records in suite order; raises while items are still pending."""
        missing = self.pending_items()
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(self.suite.items)} items of {self.suite.name!r} have no result yet"
            )
        return [self._records[item["id"]] for item in self.suite.items]
