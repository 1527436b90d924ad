"""Reads raw corpora (JSONL, gzip, Parquet, `datasets` folders) into `Row`s, one record at a time.

Corpora arrive dirty, and some arrive hostile. A truncated line, a stray Latin-1 byte, a record in
no known format: each is dropped through the ledger with a reason and the raw record goes to the
quarantine. A file that cannot be read at all (a `.bin`, a folder of something else, a table whose
columns fit no format) raises `UnreadableInput` before its first row, and the run records it and
goes on with the other inputs; a file that breaks part-way (a truncated gzip) keeps the rows before
the break, and the break is recorded as the file's unreadable tail.

Memory stays bounded whatever a line holds: lines are read at most `cap` bytes at a time, and a
longer one is dropped as `too_long` from its first bytes while the rest is skipped unread. Every
reader streams (lines, Parquet batches, a memory-mapped Arrow table). Formats belong to rows: each
record is mapped by the format it fits (`formats.row_format`), or by the one the caller names.
"""

from __future__ import annotations

import io
import json
import zlib
from collections import Counter
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import IO, Any, Iterator

from core.errors import UserError
from tasks.data.formats import (
    DETECT_ROWS,
    FORMATS,
    LAYOUTS,
    FormatError,
    detect_format,
    map_row,
    misfit_detail,
    row_format,
)
from tasks.data.records import Ledger, Row

PREF_FIELDS = ("prompt", "chosen", "rejected")
PARQUET_BATCH_ROWS = 1024
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
SUFFIXES = ".jsonl, .json, .jsonl.gz, .json.gz or .parquet"
READ_CHUNK = 1 << 20
DEFAULT_LINE_CAP = 16 << 20  # readers that count nothing (eval sets, peeking) still never hold more
QUARANTINE_PREFIX = 1000  # characters of an over-long record a reviewer gets to see
FORMAT_FIX = "give a file in one of the formats, or name its format with --format (curate.format)"
BREAK_FIX = "re-create or re-download the file"


class UnreadableInput(UserError, ValueError):
    """An input, or the rest of one, that cannot be read: `problem` says why, `fix` what to do."""

    def __init__(self, path: Path | str, problem: str, fix: str = ""):
        super().__init__(str(path), problem, fix)
        self.path = str(path)

    def __reduce__(self):  # shards may run in other processes: rebuild from the three parts
        return type(self), (self.path, self.problem, self.fix)


def line_cap(max_chars: int) -> int:
    """Bytes of one JSONL line beyond which it cannot hold a row under `max_chars` characters.

    32 bytes a character: a JSON escape takes up to 12 bytes for one character, and an HH pair
    holds its conversation twice; with a floor of 64 KiB so that metadata never trips it."""
    return max(1 << 16, 32 * max_chars)


def _is_read_error(err: BaseException) -> bool:
    """Errors that mean "this file cannot be read", as opposed to a bug in the code reading it."""
    if isinstance(err, (OSError, EOFError, zlib.error, ValueError)):
        return True
    return type(err).__module__.split(".")[0] in ("pyarrow", "datasets")


class _UntilBreak(io.RawIOBase):
    """A byte stream that ends where its file breaks instead of raising, with the error kept in
    `error`: the lines before a truncation or a corrupt block are read like any others."""

    def __init__(self, f: IO[bytes]):
        # read1: one underlying read per call, so the data decoded before a break is returned
        # before the call that fails (a looping read would lose it with the exception).
        self._f, self._read, self.error = f, getattr(f, "read1", f.read), None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.error is not None:
            return 0
        try:
            data = self._read(len(buffer))
        except (EOFError, OSError, zlib.error) as e:
            self.error = e
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def _open_lines(path: Path) -> tuple[IO[bytes], _UntilBreak]:
    # Bytes, not text: a bad byte must cost one line, not raise out of the whole file.
    import gzip

    inner = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb", buffering=0)
    raw = _UntilBreak(inner)
    return io.BufferedReader(raw, READ_CHUNK), raw


def _records(f: IO[bytes], cap: int) -> Iterator[tuple[int, bytes, int]]:
    """(line number, bytes, size) per non-blank line. A line longer than `cap` is never held whole:
    only its first bytes come back (so `len(bytes) < size`), and the rest is read past in chunks."""
    lineno = 0
    while line := f.readline(cap + 1):
        lineno += 1
        if len(line) <= cap or line.endswith(b"\n"):
            if line.strip():
                yield lineno, line, len(line)
            continue
        size, blank, prefix = len(line), not line.strip(), line[: 4 * QUARANTINE_PREFIX]
        del line
        while more := f.readline(READ_CHUNK):
            size, blank = size + len(more), blank and not more.strip()
            if more.endswith(b"\n"):
                break
        if not blank:
            yield lineno, prefix, size


def _jsonl_objects(
    path: Path, ledger: Ledger, start: int = 0, stop: int | None = None, cap: int = DEFAULT_LINE_CAP
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(fallback id, object) per good line; counts every non-blank line and drops bad ones.
    `start`/`stop` select records (non-blank lines, from 0) so that shards of one file are read,
    and counted, by different workers. A break ends the file: see `_UntilBreak`."""
    index, lineno = -1, 0
    f, raw = _open_lines(path)
    with f:
        for lineno, line, size in _records(f, cap):
            index += 1
            if index < start:
                continue
            if stop is not None and index >= stop:
                return
            ledger.read += 1
            ledger.bytes_read += size
            fallback_id = f"{path.name}:{lineno}"
            if len(line) < size:
                text = line.decode("utf-8", errors="replace")
                ledger.drop(
                    text[:QUARANTINE_PREFIX] + " …",
                    fallback_id,
                    "too_long",
                    f"a line of {size:,} bytes, over the {cap:,}-byte reading cap (32 x curate.max_chars when "
                    "curating); only its start was read",
                )
                continue
            if raw.error is not None and not line.endswith(b"\n"):
                ledger.mark_unreadable(path, _break_reason(raw.error, lineno, cut=True), BREAK_FIX, rows=1)
                return
            try:
                decoded = line.decode("utf-8")
            except UnicodeDecodeError as e:
                ledger.drop(line.decode("utf-8", errors="replace").rstrip("\r\n"), fallback_id, "bad_utf8", str(e))
                continue
            if lineno == 1:
                decoded = decoded.removeprefix("\ufeff")  # a BOM some editors write; json.loads refuses it
            try:
                obj = json.loads(decoded)
            except json.JSONDecodeError as e:
                ledger.drop(decoded.rstrip("\r\n"), fallback_id, "bad_json", str(e))
                continue
            if not isinstance(obj, dict):
                ledger.drop(
                    decoded.rstrip("\r\n"), fallback_id, "bad_json", f"a JSON {type(obj).__name__}, not an object"
                )
                continue
            yield fallback_id, obj
    if raw.error is not None:
        ledger.mark_unreadable(path, _break_reason(raw.error, lineno, cut=False), BREAK_FIX)


def _break_reason(error: BaseException, lineno: int, cut: bool) -> str:
    where = f"line {lineno} is cut off where the file breaks" if cut else f"the file breaks after line {lineno}"
    return f"{where} ({type(error).__name__}: {error}); the rows before it were read, the rest cannot be"


def read_jsonl(path: Path, ledger: Ledger) -> Iterator[Row]:
    """The older reader: `messages` or prompt/chosen/rejected rows, mixed in one file."""
    path = Path(path)
    for fallback_id, obj in _jsonl_objects(path, ledger):
        row_id = str(obj["id"]) if obj.get("id") is not None else fallback_id
        if "messages" in obj:
            yield Row(id=row_id, kind="sft", data={"messages": obj["messages"]}, source=str(path))
        elif all(k in obj for k in PREF_FIELDS):
            yield Row(id=row_id, kind="pref", data={k: obj[k] for k in PREF_FIELDS}, source=str(path))
        else:
            ledger.drop(obj, row_id, "unknown_format", f"keys {sorted(obj)}: need messages, or prompt/chosen/rejected")


def _parquet_objects(
    path: Path, ledger: Ledger, start: int = 0, stop: int | None = None, cap: int = DEFAULT_LINE_CAP
) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        index = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            if index + batch.num_rows <= start:
                index += batch.num_rows
                continue
            if stop is not None and index >= stop:
                break
            for obj in batch.to_pylist():
                if index < start or (stop is not None and index >= stop):
                    index += 1
                    continue
                ledger.read += 1
                yield f"{path.name}:{index}", obj
                index += 1


def _dataset_objects(
    path: Path, ledger: Ledger, start: int = 0, stop: int | None = None, cap: int = DEFAULT_LINE_CAP
) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    ds = datasets.load_from_disk(str(path))  # memory-mapped Arrow: rows are read as iterated
    if isinstance(ds, datasets.DatasetDict):
        raise UnreadableInput(
            path,
            f"holds a DatasetDict with splits {sorted(ds)}",
            f"pass one split's folder, e.g. {path / next(iter(ds))}",
        )
    stop = len(ds) if stop is None else min(stop, len(ds))
    for index in range(start, stop):
        obj = ds[index]
        ledger.read += 1
        yield f"{path.name}:{index}", obj


def _folder_hint(path: Path) -> str:
    files = sorted(p.name for p in path.iterdir() if p.name.lower().endswith((*JSONL_SUFFIXES, ".parquet")))
    if files:
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        return f"it holds {shown}: pass each data file with its own --input"
    return f"pass the data files themselves ({SUFFIXES}), each with its own --input"


def _objects_reader(path: Path):
    """The reader for a path, after cheap checks of its first bytes, so that a file of the wrong
    kind is refused by name before any row is counted."""
    if not path.exists():
        raise UnreadableInput(path, "does not exist", "check the path")
    if path.is_dir():
        if not (path / "dataset_dict.json").exists() and not (path / "state.json").exists():
            raise UnreadableInput(
                path,
                "is a folder but not a dataset written by datasets' save_to_disk (no state.json)",
                _folder_hint(path),
            )
        return _dataset_objects
    name = path.name.lower()
    if name.endswith(".parquet"):
        with open(path, "rb") as f:
            if f.read(4) != b"PAR1":
                raise UnreadableInput(
                    path,
                    "is named .parquet but is not a Parquet file (no PAR1 header)",
                    "check that the file was written completely, as Parquet",
                )
        return _parquet_objects
    if not name.endswith(JSONL_SUFFIXES):
        kind = f"a {path.suffix} file" if path.suffix else "a file without a suffix"
        raise UnreadableInput(
            path,
            f"is {kind}, which curate cannot read",
            f"give a {SUFFIXES} file, or a folder written by datasets' save_to_disk",
        )
    with open(path, "rb") as f:
        magic = f.read(2)
    if name.endswith(".gz") and magic != b"\x1f\x8b":
        raise UnreadableInput(
            path, "is named .gz but is not gzip-compressed", f"if it is plain JSON Lines, rename it to {path.name[:-3]}"
        )
    if not name.endswith(".gz") and magic == b"\x1f\x8b":
        raise UnreadableInput(path, "is gzip-compressed but not named .gz", f"rename it to {path.name}.gz")
    f, _ = _open_lines(path)
    with f:
        head = f.read(4096)
    if b"\x00" in head:
        raise UnreadableInput(
            path,
            "holds NUL bytes: binary data or UTF-16 text, not JSON Lines",
            "give UTF-8 JSON Lines (one JSON object per line)",
        )
    if name.endswith((".json", ".json.gz")) and head.lstrip().lstrip(b"\xef\xbb\xbf").startswith(b"["):
        raise UnreadableInput(
            path,
            "holds one JSON array, not JSON Lines (one object per line)",
            "convert it, e.g. jq -c '.[]' in.json > out.jsonl",
        )
    return _jsonl_objects


def _until_error(
    path: Path, objects: Iterator[tuple[str, dict[str, Any]]], ledger: Ledger
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Ends an input where reading it fails, recording the unreadable tail; a bug still raises."""
    try:
        yield from objects
    except UnreadableInput as e:
        ledger.mark_unreadable(path, e.problem, e.fix)
    except Exception as e:  # noqa: BLE001 - narrowed by _is_read_error just below
        if not _is_read_error(e):
            raise
        ledger.mark_unreadable(
            path, f"reading stopped at an error ({type(e).__name__}: {e}); the rows before it were read", BREAK_FIX
        )


def probe_input(path: Path, fmt: str = "auto", cap: int = DEFAULT_LINE_CAP) -> str:
    """The format of an input from its first rows ("unknown" when it has none), or
    `UnreadableInput` when it cannot be read or none of its first rows fits any format."""
    path = Path(path)
    reader = _objects_reader(path)
    scratch = Ledger()
    try:
        with closing(reader(path, scratch, 0, None, cap)) as peek:  # closes the file now, not at gc
            objs = [obj for _, obj in islice(peek, DETECT_ROWS)]
    except UnreadableInput:
        raise
    except Exception as e:  # noqa: BLE001 - narrowed by _is_read_error just below
        if not _is_read_error(e):
            raise
        raise UnreadableInput(
            path,
            f"cannot be read ({type(e).__name__}: {e})",
            f"check that it is a complete {SUFFIXES} file or save_to_disk folder",
        ) from e
    if scratch.unreadable and not objs:
        raise UnreadableInput(path, scratch.unreadable[0]["reason"], scratch.unreadable[0]["fix"])
    if fmt != "auto" or not objs:
        return fmt if fmt != "auto" else "unknown"
    try:
        return detect_format(objs)
    except ValueError:
        seen = sorted({k for o in objs for k in o})
        raise UnreadableInput(
            path, f"no known format fits its first {len(objs)} rows (keys seen: {seen}); formats: {LAYOUTS}", FORMAT_FIX
        ) from None


def detect_file_format(path: Path) -> str:
    """The main format of a file from its first rows; "unknown" for a file with no readable record."""
    return probe_input(Path(path))


def read_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(fallback id, raw record) for every good record of any supported file, bad ones skipped
    uncounted: for reading reference sets (eval items) whatever their layout. A file that breaks
    raises at the break: an eval set read in part would decontaminate in part."""
    path = Path(path)
    scratch = Ledger()
    yield from _objects_reader(path)(path, scratch)
    if scratch.unreadable:
        raise UnreadableInput(path, scratch.unreadable[0]["reason"], "re-create or re-download the file")


def input_bytes(path: Path) -> int:
    """Bytes of JSON Lines a reader will go through (a .gz's uncompressed size, from its trailer);
    0 for other layouts, whose progress is told in rows only."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".jsonl.gz", ".json.gz")):
            with open(path, "rb") as f:
                f.seek(-4, 2)
                return int.from_bytes(f.read(4), "little")  # ISIZE: the size modulo 4 GiB, enough for an ETA
        if name.endswith((".jsonl", ".json")):
            return path.stat().st_size
    except OSError:
        pass
    return 0


def count_records(path: Path) -> int:
    """How many records a file holds (what `start`/`stop` index), without parsing them."""
    path = Path(path)
    reader = _objects_reader(path)
    if reader is _jsonl_objects:
        f, _ = _open_lines(path)
        with f:
            return sum(1 for _ in _records(f, READ_CHUNK))  # blank or not does not depend on the cap
    if reader is _parquet_objects:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    import datasets

    return len(datasets.load_from_disk(str(path)))


def read_rows(
    path: Path, ledger: Ledger, fmt: str = "auto", start: int = 0, stop: int | None = None, cap: int = DEFAULT_LINE_CAP
) -> Iterator[Row]:
    """Yields one `Row` per record that fits its format; every other record is dropped with its reason.

    The checks on the file happen here, before the first row, so a wrong file fails at once with
    `UnreadableInput`. With `fmt="auto"` each record is read as the format it fits; otherwise all
    are read as `fmt`. Rows per format go to `ledger.formats[str(path)]` for the run's report. A
    line over `cap` bytes, or a record with more than `cap` characters of text, is `too_long`.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use 'auto' or one of {sorted(FORMATS)}")
    main = probe_input(path, fmt, cap)
    counts = ledger.formats.setdefault(str(path), Counter())
    reader = _objects_reader(path)
    objects = _until_error(path, reader(path, ledger, start, stop, cap), ledger)
    # A JSONL line under the cap holds fewer characters of text than bytes; other layouts are counted.
    return _mapped_rows(path, objects, fmt, main, ledger, counts, None if reader is _jsonl_objects else cap)


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    return 0


def _row_format(obj: dict[str, Any], main: str) -> str | None:
    """The record's own format; failing that, the file's main one when the record has all that
    format's keys but a null among them: a Parquet or Arrow row with an empty cell is that format
    with a missing field (so dropped as `missing_field`), not a record of unknown shape."""
    own = row_format(obj)
    if own is None and main in FORMATS and row_format({k: "" if v is None else v for k, v in obj.items()}) == main:
        return main
    return own


def _mapped_rows(
    path: Path,
    objects: Iterator[tuple[str, dict[str, Any]]],
    fmt: str,
    main: str,
    ledger: Ledger,
    counts: Counter[str],
    cap: int | None,
) -> Iterator[Row]:
    for fallback_id, obj in objects:
        row_id = str(obj["id"]) if obj.get("id") is not None else fallback_id
        row_fmt = _row_format(obj, main) if fmt == "auto" else fmt
        if row_fmt is None:
            ledger.drop(obj, row_id, "format_unknown", misfit_detail(obj))
            continue
        counts[row_fmt] += 1
        try:
            kind, data = map_row(row_fmt, obj)
        except FormatError as e:
            ledger.drop(obj, row_id, e.reason, e.detail)
            continue
        chars = _text_chars(data) if cap is not None else 0
        if cap is not None and chars > cap:  # Parquet and Arrow cells have no line to cap: no giant row goes on
            preview = json.dumps(data, ensure_ascii=False, default=str)[:QUARANTINE_PREFIX] + " …"
            ledger.drop(preview, row_id, "too_long", f"{chars:,} characters of text, over the reading cap of {cap:,}")
            continue
        yield Row(id=row_id, kind=kind, data=data, source=str(path))
