"""An on-disk cache of embeddings keyed by text, written as it goes, so a killed run resumes.

E5 on one CPU core embeds a few passages per second: the full SciFact corpus
takes about half an hour, and a run that dies near the end and starts over
wastes it. So vectors are stored per text (SHA-256 of the exact text sent,
before the handler adds its prefix) in one directory per *identity* - model
folder, backend, content type, prefixes, token window - and appended as
shards of at most ``flush_every`` texts. Each shard is written to a temporary
name and renamed, so a crash leaves whole shards only; a rerun loads them and
embeds only what is missing.

Keying by text also means that the same text is embedded once whatever set it
belongs to: a subsample reuses the full corpus' vectors, and a passage's only
chunk (a passage shorter than the chunk size) reuses the passage's vector.

Each shard records how long its texts took, so a throughput figure survives a
resume (:meth:`EmbeddingCache.rate`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# embed(texts) -> one unit vector per text, in order.
EmbedBatch = Callable[[Sequence[str]], np.ndarray]
DEFAULT_FLUSH_EVERY = 200
SHARD_GLOB = "shard-*.npz"


def text_key(text: str) -> str:
    """The cache key of one text: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def identity_key(*parts: object) -> str:
    """A short, stable directory name for everything that changes a vector."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]


class EmbeddingCache:
    """Vectors by text for one identity, stored under ``root/<name>``."""

    def __init__(self, root: Path, name: str, flush_every: int = DEFAULT_FLUSH_EVERY) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every: {flush_every}, must be at least 1")
        self.directory = Path(root) / name
        self.flush_every = flush_every
        self._vectors: dict[str, np.ndarray] = {}
        self._timed: list[tuple[frozenset[str], float]] = []  # (keys, seconds) per timed shard
        self._shards = 0
        self._load()

    def _load(self) -> None:
        if not self.directory.is_dir():
            return
        for shard in sorted(self.directory.glob(SHARD_GLOB)):
            with np.load(shard) as data:
                keys = [str(k) for k in data["keys"]]
                vectors = data["vectors"]
                seconds = float(data["seconds"])
            for key, vector in zip(keys, vectors, strict=True):
                self._vectors[key] = vector
            if np.isfinite(seconds):
                self._timed.append((frozenset(keys), seconds))
            self._shards += 1

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._vectors

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts not yet cached, in first-seen order."""
        seen: set[str] = set()
        out: list[str] = []
        for text in texts:
            key = text_key(text)
            if key not in self._vectors and key not in seen:
                seen.add(key)
                out.append(text)
        return out

    def put(self, texts: Sequence[str], vectors: np.ndarray, seconds: float = float("nan")) -> None:
        """Store one shard: ``vectors[i]`` is the embedding of ``texts[i]``.

        ``seconds`` is the time the texts took to embed (NaN: unknown, for
        imported vectors), used only by :meth:`rate`.
        """
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        if not texts:
            return
        keys = [text_key(t) for t in texts]
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"shard-{time.time_ns():020d}-{os.getpid()}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    keys=np.array(keys),
                    vectors=np.asarray(vectors, dtype=np.float32),
                    seconds=np.array(seconds),
                )
            os.replace(tmp, self.directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for key, vector in zip(keys, np.asarray(vectors, dtype=np.float32), strict=True):
            self._vectors[key] = vector
        if np.isfinite(seconds):
            self._timed.append((frozenset(keys), seconds))
        self._shards += 1

    def embed(
        self,
        texts: Sequence[str],
        embed: EmbedBatch,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Vectors for ``texts`` in order, embedding only the missing ones, a shard at a time.

        ``embed`` is called only if something is missing (so a model can be
        loaded lazily); ``progress(done, todo)`` after each shard.
        """
        todo = self.missing(texts)
        for start in range(0, len(todo), self.flush_every):
            batch = todo[start : start + self.flush_every]
            started = time.perf_counter()
            vectors = embed(batch)
            self.put(batch, vectors, time.perf_counter() - started)
            if progress is not None:
                progress(min(start + len(batch), len(todo)), len(todo))
        return self.get(texts)

    def get(self, texts: Sequence[str]) -> np.ndarray:
        """Cached vectors for ``texts`` in order (KeyError naming the first missing text)."""
        rows = []
        for text in texts:
            key = text_key(text)
            if key not in self._vectors:
                raise KeyError(f"not cached: {text[:60]!r}")
            rows.append(self._vectors[key])
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(rows)

    def rate(self, texts: Sequence[str] | None = None) -> float | None:
        """Texts per second over the timed shards (None: nothing timed).

        With ``texts``, only shards made entirely of those texts count, so the
        figure is that text set's even when other runs (chunks, a subsample)
        added shards to the same cache.
        """
        wanted = None if texts is None else {text_key(t) for t in texts}
        count, seconds = 0, 0.0
        for keys, took in self._timed:
            if wanted is None or keys <= wanted:
                count += len(keys)
                seconds += took
        if not count or seconds <= 0:
            return None
        return count / seconds

    @property
    def shards(self) -> int:
        """How many shards are on disk (including this process's)."""
        return self._shards


def model_cache_name(
    model_dir: Path, backend: str, content_type: str, prefix: str, max_tokens: int | None
) -> str:
    """The cache directory name for one model folder, backend and content type.

    Everything that changes the vector of a given text is in it: the folder
    (resolved, so two spellings share a cache), the backend, the content type
    and its prefix, and the token window override.
    """
    digest = identity_key(Path(model_dir).resolve(), backend, content_type, prefix, max_tokens)
    return f"{Path(model_dir).resolve().name[:40]}-{backend}-{content_type}-{digest}"
