"""What a fast path costs in ranking quality: NDCG@10 per encoder backend on a BEIR set.

    .venv/bin/python -m benchmarks.fast_path_quality --model-dir DIR \\
        --dataset ../shared/data/scifact --backends exact,bf16,onnx-int8 [--subsample 1500]

Every backend embeds the identical passages and queries through the handler
(so prefixes, truncation, batching and pooling are the endpoint's), ranking is
exact cosine, metrics are ``tools/evaluate/metrics.py`` (checked against
pytrec_eval). Embeddings are cached per (model, dataset, subsample, backend)
under ``--cache`` (default ``~/.cache/e5-fast-path``, outside the repository),
so a rerun only embeds what changed: on 2 cores E5 needs minutes per corpus.

``--subsample N`` keeps every document judged for a test query plus seeded
random others up to N documents, when the whole corpus costs too much CPU; the
comparison stays exact vs. variant on identical inputs, but the absolute NDCG
is then that of an easier, smaller corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np

from model import fast_path, inference
from tools.evaluate.datasets import Dataset, load_beir
from tools.evaluate.local import dense_run, embed_texts
from tools.evaluate.metrics import evaluate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fast_path_quality")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True, help="a BEIR-format directory")
    parser.add_argument("--backends", default="exact,bf16", help="comma-separated, exact first")
    parser.add_argument("--threads", type=int, default=inference.available_cores())
    parser.add_argument("--subsample", type=int, default=0, help="documents to keep (0: all)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "e5-fast-path")
    return parser.parse_args(argv)


def documents(dataset: Dataset, subsample: int) -> list[str]:
    """Document ids in corpus order: all, or the judged ones plus seeded random others."""
    doc_ids = list(dataset.corpus)
    if not subsample:
        return doc_ids
    judged = {d for rel in dataset.qrels.values() for d in rel if d in dataset.corpus}
    rest = sorted(set(doc_ids) - judged)
    random.Random(0).shuffle(rest)  # noqa: S311 - a reproducible sample, not a secret
    keep = judged | set(rest[: max(0, subsample - len(judged))])
    return [d for d in doc_ids if d in keep]


def main(argv: list[str] | None = None) -> None:
    """Embed with each backend (cached), rank, and print NDCG@10 and its delta to the first."""
    args = parse_args(argv)
    backends = [fast_path.parse_backend(b) for b in args.backends.split(",") if b.strip()]
    dataset = load_beir(args.dataset)
    doc_ids = documents(dataset, args.subsample)
    passages = [dataset.corpus[d].indexed_text for d in doc_ids]
    query_ids = list(dataset.queries)
    queries = [dataset.queries[q] for q in query_ids]
    key = hashlib.sha256(
        f"{args.model_dir.resolve()}|{args.dataset.resolve()}|{args.subsample}".encode()
    ).hexdigest()[:12]
    args.cache.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.dataset.name}: {len(doc_ids)} documents, {len(queries)} queries, {args.model_dir}"
    )
    print("| backend | NDCG@10 | delta (points) | passages/s | queries/s | load s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    first: float | None = None
    for backend in backends:
        cache = args.cache / f"{key}-{backend}.npz"
        if not cache.exists():
            started = time.perf_counter()
            model = inference.load_model(
                args.model_dir, inference.HandlerConfig(threads=args.threads, backend=backend)
            )
            load = time.perf_counter() - started
            started = time.perf_counter()
            p_vectors = embed_texts(model, passages, "passage")
            p_time = time.perf_counter() - started
            started = time.perf_counter()
            q_vectors = embed_texts(model, queries, "query")
            q_time = time.perf_counter() - started
            np.savez(cache, P=p_vectors, Q=q_vectors, times=np.array([load, p_time, q_time]))
        saved = np.load(cache)
        run = dense_run(saved["Q"], saved["P"], query_ids, doc_ids, 100)
        ndcg = evaluate(dataset.qrels, run, (10,))["NDCG@10"]
        first = ndcg if first is None else first
        load, p_time, q_time = (float(x) for x in saved["times"])
        print(
            f"| {backend} | {ndcg:.4f} | {100 * (ndcg - first):+.2f} "
            f"| {len(passages) / p_time:.1f} | {len(queries) / q_time:.1f} | {load:.1f} |",
            flush=True,
        )
    print(json.dumps({"cache": str(args.cache), "key": key}))


if __name__ == "__main__":
    main()
