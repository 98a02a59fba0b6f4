"""Reading documents: JSON Lines, CSV and Parquet files, or standard input.

Every input record becomes either a :class:`Document` (an id, the text, and the
fields kept) or a :class:`Malformed` naming its file and line (or Parquet row)
and what is wrong, so one bad line is reported and dead-lettered while the run
goes on. Records stream: a file of any size is read in constant memory.

Ids: the id field is required, because ``--resume`` and idempotent retries
both rest on it (re-indexing the same id overwrites, it never duplicates).
``--ids-from-content`` derives the id from the text instead (a SHA-256 prefix),
for corpora without ids; identical texts then become one document.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

FORMATS = ("jsonl", "csv", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
            ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip


class InputError(RuntimeError):
    """An input that cannot be read at all (missing file, unknown format): one line."""


@dataclass(frozen=True)
class Fields:
    """Which input fields hold the text and the id, and which others are kept."""

    text: str = "text"
    id: str = "id"
    keep: tuple[str, ...] = ()
    ids_from_content: bool = False


@dataclass
class Document:
    origin: str  # "file:line" (or "file:row N" for Parquet)
    id: str
    source: dict[str, Any]  # what is indexed: {semantic field: text, kept fields...}
    attempts: int = 0
    last_reason: str = ""
    ambiguous: bool = False  # the last failure may have been applied (lost answer)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Malformed:
    origin: str
    reason: str
    raw: str


Record = Document | Malformed


def format_of(path: str, given: str | None) -> str:
    if given:
        return given
    if path == "-":
        return "jsonl"
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown format (use --format {'|'.join(FORMATS)})")
    return fmt


def count_records(path: str, fmt: str) -> int | None:
    """How many records a file holds (for the ETA), or None for standard input."""
    if path == "-":
        return None
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with open(path, "rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        return max(lines - 1, 0) if fmt == "csv" else lines
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from error


def read(path: str, fmt: str, fields: Fields, semantic_field: str) -> Iterator[Record]:
    """The records of one input, in order."""
    name = "stdin" if path == "-" else path
    try:
        if fmt == "parquet":
            yield from _parquet(path, name, fields, semantic_field)
            return
        handle: IO[str]
        if path == "-":
            handle = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        else:
            handle = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
        with handle:
            if fmt == "csv":
                yield from _csv(handle, name, fields, semantic_field)
            else:
                yield from _jsonl(handle, name, fields, semantic_field)
    except OSError as error:
        raise InputError(f"{name}: {error.strerror or error}") from error


def _document(record: Any, origin: str, raw: str, fields: Fields, semantic_field: str) -> Record:
    if not isinstance(record, dict):
        return Malformed(origin, f"a record must be an object, not {type(record).__name__}", raw)
    text = record.get(fields.text)
    if not isinstance(text, str) or not text.strip():
        what = "missing" if text is None else "empty" if isinstance(text, str) else "not text"
        return Malformed(origin, f"text field {fields.text!r} is {what}", raw)
    if fields.ids_from_content:
        doc_id = hashlib.sha256(text.encode()).hexdigest()[:32]
    else:
        value = record.get(fields.id)
        if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
            what = "missing" if value is None else f"not a string or integer ({value!r})"
            return Malformed(origin, f"id field {fields.id!r} is {what}"[:200], raw)
        doc_id = str(value)
        if len(doc_id.encode()) > 512:  # core IndexRequest: _id is limited to 512 bytes
            return Malformed(origin, f"id field {fields.id!r} is longer than 512 bytes", raw)
    source = {semantic_field: text}
    for name in fields.keep:
        if name in record and name not in (semantic_field,):
            source[name] = record[name]
    return Document(origin, doc_id, source)


def _jsonl(handle: IO[str], name: str, fields: Fields, semantic_field: str) -> Iterator[Record]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        origin = f"{name}:{number}"
        try:
            record = json.loads(line)
        except ValueError as error:
            yield Malformed(origin, f"not JSON ({error})", line.rstrip("\n"))
            continue
        yield _document(record, origin, line.rstrip("\n"), fields, semantic_field)


def _csv(handle: IO[str], name: str, fields: Fields, semantic_field: str) -> Iterator[Record]:
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise InputError(f"{name}:1: unreadable CSV header ({error})") from error
    missing = [f for f in (fields.text, None if fields.ids_from_content else fields.id)
               if f and f not in header]  # fmt: skip
    if missing:
        raise InputError(f"{name}: CSV header has no column {', '.join(map(repr, missing))}")
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Malformed(f"{name}:{start}", f"unreadable CSV ({error})", "")
            continue
        if not row:
            continue
        origin = f"{name}:{start}"
        raw = ",".join(row)
        if len(row) != len(header):
            yield Malformed(origin, f"{len(row)} fields, the header has {len(header)}", raw)
            continue
        yield _document(dict(zip(header, row, strict=True)), origin, raw, fields, semantic_field)


def _parquet(path: str, name: str, fields: Fields, semantic_field: str) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source: Any = path
    if path == "-":  # Parquet needs random access: read standard input whole
        source = pa.BufferReader(sys.stdin.buffer.read())
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{name}: not a Parquet file ({error})") from error
    columns = parquet.schema_arrow.names
    wanted = [fields.text, *([] if fields.ids_from_content else [fields.id]), *fields.keep]
    missing = [c for c in wanted[:2] if c not in columns]
    if missing:
        raise InputError(f"{name}: Parquet file has no column {', '.join(map(repr, missing))}")
    row = 0
    for batch in parquet.iter_batches(columns=[c for c in dict.fromkeys(wanted) if c in columns]):
        for record in batch.to_pylist():
            row += 1
            raw = json.dumps(record, default=str)
            yield _document(record, f"{name}:row {row}", raw, fields, semantic_field)
