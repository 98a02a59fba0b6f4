"""BEIR-format datasets: load from a directory, or fetch a named one with a checksum and a cache.

A BEIR dataset is three files: ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``,
``corpus-id``, ``score``, with a header row). Only the queries that appear in
the qrels are evaluated: that is what BEIR calls the test queries, and what the
blog's "Test queries" column counts.

Why the strictness: an evaluation that silently skips a malformed line or a
qrels row whose query is missing produces a number that looks fine and is
wrong. Every problem is therefore a :class:`DatasetError` whose one-line
message names the file, the line and the problem.

Named datasets come from the public BEIR archive. Each archive is checked
against the MD5 the BEIR project publishes for it *before* it is unpacked, and
kept in a cache directory so that a second run does not download again (and
works offline).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"

# MD5 of each archive as published in the BEIR project's dataset table. MD5 is
# what upstream publishes; it guards against truncated or substituted downloads,
# which is all a checksum of public data has to do here.
BEIR_MD5: dict[str, str] = {
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "quora": "18fb154900ba42a600f84b839c173167",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
}

CACHE_ENV_VAR = "EVAL_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "e5-opensearch-eval"

# fetch(url, destination) writes the resource at url into destination.
Fetcher = Callable[[str, Path], None]


class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message is one line naming the problem."""


@dataclass(frozen=True)
class Passage:
    """One corpus entry. ``title`` may be empty."""

    title: str
    text: str

    @property
    def indexed_text(self) -> str:
        """What is embedded and indexed: title and body, as BEIR's own retrievers do."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset, restricted to the split's queries."""

    name: str
    corpus: dict[str, Passage]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    # qrels rows whose document is not in the corpus: kept in the qrels (they
    # count as relevant-but-unretrievable, like trec_eval does) and reported.
    missing_docs: int = field(default=0)


@dataclass(frozen=True)
class LengthStats:
    """Word counts as in the blog's first table (whitespace-separated words)."""

    mean_query_words: float
    median_query_words: float
    mean_passage_words: float
    median_passage_words: float
    passages: int
    test_queries: int


def words(text: str) -> int:
    """Whitespace word count: simple, tokenizer-independent, what such tables usually use."""
    return len(text.split())


def length_stats(dataset: Dataset) -> LengthStats:
    """Query and passage lengths in words; passages count their body text (not the title)."""
    q = [words(dataset.queries[qid]) for qid in dataset.qrels]
    p = [words(passage.text) for passage in dataset.corpus.values()]
    return LengthStats(
        mean_query_words=statistics.fmean(q) if q else 0.0,
        median_query_words=float(statistics.median(q)) if q else 0.0,
        mean_passage_words=statistics.fmean(p) if p else 0.0,
        median_passage_words=float(statistics.median(p)) if p else 0.0,
        passages=len(dataset.corpus),
        test_queries=len(dataset.qrels),
    )


# --------------------------------------------------------------------------- loading


def load_beir(path: Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a BEIR dataset directory and check that its three files agree."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(
            f"{path}: not a directory (expected corpus.jsonl, queries.jsonl, qrels/)"
        )
    corpus_file = path / "corpus.jsonl"
    queries_file = path / "queries.jsonl"
    qrels_file = path / "qrels" / f"{split}.tsv"
    for required in (corpus_file, queries_file, qrels_file):
        if not required.is_file():
            raise DatasetError(f"{required}: file not found")

    corpus: dict[str, Passage] = {}
    for lineno, row in _read_jsonl(corpus_file):
        doc_id = _string_field(row, "_id", corpus_file, lineno)
        text = _string_field(row, "text", corpus_file, lineno, allow_empty=True)
        title = row.get("title", "") or ""
        if not isinstance(title, str):
            raise DatasetError(f"{corpus_file}:{lineno}: 'title' must be a string")
        if doc_id in corpus:
            raise DatasetError(f"{corpus_file}:{lineno}: duplicate _id {doc_id!r}")
        corpus[doc_id] = Passage(title=title, text=text)
    if not corpus:
        raise DatasetError(f"{corpus_file}: no documents")

    all_queries: dict[str, str] = {}
    for lineno, row in _read_jsonl(queries_file):
        query_id = _string_field(row, "_id", queries_file, lineno)
        all_queries[query_id] = _string_field(row, "text", queries_file, lineno)

    qrels, missing_docs = _read_qrels(qrels_file, all_queries, corpus)
    if not qrels:
        raise DatasetError(f"{qrels_file}: no judgements")
    queries = {qid: all_queries[qid] for qid in qrels}
    return Dataset(
        name=name or path.name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        missing_docs=missing_docs,
    )


def _read_jsonl(file: Path):
    """Yield ``(line number, object)``; blank lines are allowed, anything else must be an object."""
    with file.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{file}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{file}:{lineno}: expected a JSON object")
            yield lineno, row


def _string_field(
    row: dict, key: str, file: Path, lineno: int, *, allow_empty: bool = False
) -> str:
    value = row.get(key)
    # BEIR ids are strings, but some exports write numeric ids: accept and normalise.
    if isinstance(value, int) and not isinstance(value, bool) and key == "_id":
        value = str(value)
    if not isinstance(value, str):
        raise DatasetError(f"{file}:{lineno}: missing or non-string {key!r}")
    if not allow_empty and not value.strip():
        raise DatasetError(f"{file}:{lineno}: empty {key!r}")
    return value


def _read_qrels(
    file: Path, queries: dict[str, str], corpus: dict[str, Passage]
) -> tuple[dict[str, dict[str, int]], int]:
    qrels: dict[str, dict[str, int]] = {}
    missing_docs = 0
    with file.open(encoding="utf-8", newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and row[0].strip().lower() in {"query-id", "query_id", "qid"}:
                continue
            if len(row) != 3:
                raise DatasetError(
                    f"{file}:{lineno}: expected 3 tab-separated columns "
                    f"(query-id, corpus-id, score), got {len(row)}"
                )
            qid, doc_id, raw_score = (cell.strip() for cell in row)
            try:
                score = int(raw_score)
            except ValueError:
                raise DatasetError(
                    f"{file}:{lineno}: score {raw_score!r} is not an integer"
                ) from None
            if qid not in queries:
                raise DatasetError(f"{file}:{lineno}: query-id {qid!r} is not in queries.jsonl")
            if doc_id not in corpus:
                missing_docs += 1
            qrels.setdefault(qid, {})[doc_id] = score
    return qrels, missing_docs


# --------------------------------------------------------------------------- named datasets


def default_cache_dir() -> Path:
    """Cache root: ``$EVAL_CACHE_DIR`` or ``~/.cache/e5-opensearch-eval``."""
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(env) if env else DEFAULT_CACHE_DIR


def urllib_fetch(url: str, destination: Path) -> None:
    """Stream ``url`` (https or file) into ``destination``."""
    if not url.startswith(("https://", "file://")):
        raise DatasetError(f"{url}: only https:// and file:// URLs are fetched")
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:  # noqa: S310 - scheme checked above
        shutil.copyfileobj(response, out, length=1 << 20)


def file_md5(file: Path) -> str:
    """MD5 of a file, read in chunks (archives reach hundreds of MB)."""
    digest = hashlib.md5(usedforsecurity=False)
    with file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_dataset(
    spec: str,
    *,
    split: str = "test",
    cache_dir: Path | None = None,
    fetch: Fetcher = urllib_fetch,
    base_url: str = BEIR_BASE_URL,
    checksums: dict[str, str] | None = None,
) -> Dataset:
    """Load ``spec``: an existing directory, or a BEIR dataset name fetched into the cache.

    ``fetch``, ``base_url`` and ``checksums`` exist so that the download,
    checksum and cache logic can be exercised without the network.
    """
    as_path = Path(spec).expanduser()
    if as_path.exists():
        return load_beir(as_path, split=split)
    checksums = BEIR_MD5 if checksums is None else checksums
    name = spec.strip().lower()
    if name not in checksums:
        known = ", ".join(sorted(checksums))
        raise DatasetError(f"{spec!r}: not a directory and not a known BEIR dataset ({known})")
    directory = ensure_downloaded(
        name,
        cache_dir=cache_dir or default_cache_dir(),
        fetch=fetch,
        base_url=base_url,
        expected_md5=checksums[name],
    )
    return load_beir(directory, split=split, name=name)


def ensure_downloaded(
    name: str, *, cache_dir: Path, fetch: Fetcher, base_url: str, expected_md5: str
) -> Path:
    """Return the cached, unpacked dataset directory, downloading and verifying it if needed.

    The archive is downloaded to a temporary file, verified, unpacked into a
    temporary directory and only then renamed into place, so an interrupted
    run never leaves a half-unpacked dataset that a later run would trust.
    A ``.md5`` marker records which archive a cached directory came from.
    """
    target = cache_dir / name
    marker = cache_dir / f"{name}.md5"
    if target.is_dir() and marker.is_file() and marker.read_text().strip() == expected_md5:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{name}.zip"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        try:
            fetch(url, archive)
        except DatasetError:
            raise
        except OSError as exc:
            raise DatasetError(f"{url}: download failed ({exc})") from None
        actual = file_md5(archive)
        if actual != expected_md5:
            raise DatasetError(f"{url}: MD5 {actual} does not match the published {expected_md5}")
        unpacked = Path(tmp) / "unpacked"
        _safe_extract(archive, unpacked)
        # BEIR archives hold one top-level folder named after the dataset.
        inner = unpacked / name
        source = inner if inner.is_dir() else unpacked
        if target.exists():
            shutil.rmtree(target)
        source.rename(target)
    marker.write_text(expected_md5 + "\n")
    return target


def _safe_extract(archive: Path, destination: Path) -> None:
    """Unzip, refusing members that would land outside ``destination``."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                posix = PurePosixPath(member)
                if posix.is_absolute() or ".." in posix.parts:
                    raise DatasetError(f"{archive.name}: member {member!r} escapes the archive")
            zipped.extractall(destination)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive.name}: not a zip archive ({exc})") from None
