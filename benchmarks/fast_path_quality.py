"""What a fast path costs in ranking quality: NDCG@10 per encoder backend on a BEIR set.

    .venv/bin/python -m benchmarks.fast_path_quality --model-dir DIR \\
        --dataset ../shared/data/scifact --backends exact,bf16,onnx-int8 [--subsample 1500]

Every backend embeds the identical passages and queries through the handler
(so prefixes, truncation, batching and pooling are the endpoint's), ranking is
exact cosine, metrics are ``tools/evaluate/metrics.py`` (checked against
pytrec_eval). Embeddings are cached per text for each (model, backend, content type)
under ``--cache`` (default ``~/.cache/e5-fast-path``, outside the repository)
and written every ``--flush-every`` texts (``tools/evaluate/embedding_cache.py``),
so a killed run resumes where it stopped and a subsample reuses the full
corpus' vectors: on one core E5 needs about half an hour for SciFact. The
passages/s column is over the timed shards made of this run's texts only,
across resumes (shards other runs added, e.g. chunks, do not count).

``--subsample N`` keeps every document judged for a test query plus seeded
random others up to N documents, when the whole corpus costs too much CPU; the
comparison stays exact vs. variant on identical inputs, but the absolute NDCG
is then that of an easier, smaller corpus.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from model import fast_path, inference
from tools.evaluate.datasets import Dataset, load_beir
from tools.evaluate.embedding_cache import EmbeddingCache, model_cache_name
from tools.evaluate.local import LazyModel, dense_run, embed_texts
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
    parser.add_argument(
        "--flush-every", type=int, default=200, help="texts per cache shard (resume granularity)"
    )
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
    """Embed with each backend (cached per text), rank, and print NDCG@10 and its delta."""
    args = parse_args(argv)
    backends = [fast_path.parse_backend(b) for b in args.backends.split(",") if b.strip()]
    dataset = load_beir(args.dataset)
    doc_ids = documents(dataset, args.subsample)
    passages = [dataset.corpus[d].indexed_text for d in doc_ids]
    query_ids = list(dataset.queries)
    queries = [dataset.queries[q] for q in query_ids]
    print(
        f"{args.dataset.name}: {len(doc_ids)} documents, {len(queries)} queries, {args.model_dir}",
        flush=True,
    )
    rows: list[str] = []
    first: float | None = None
    for backend in backends:
        config = inference.HandlerConfig(threads=args.threads, backend=backend)
        model = LazyModel(args.model_dir, config)  # loaded only if something is not cached

        vectors = {}
        rates = {}
        for content_type, texts in (("passage", passages), ("query", queries)):
            cache = EmbeddingCache(
                args.cache,
                model_cache_name(
                    args.model_dir,
                    backend,
                    content_type,
                    config.prefix_for(content_type),
                    config.max_tokens,
                ),
                flush_every=args.flush_every,
            )

            def progress(done: int, todo: int, what: str = f"{backend} {content_type}") -> None:
                print(f"  {what}: {done}/{todo} embedded", flush=True)

            vectors[content_type] = cache.embed(
                texts,
                lambda batch, ct=content_type, m=model: embed_texts(m.get(), batch, ct),
                progress,
            )
            rates[content_type] = cache.rate(texts)
        run = dense_run(vectors["query"], vectors["passage"], query_ids, doc_ids, 100)
        ndcg = evaluate(dataset.qrels, run, (10,))["NDCG@10"]
        first = ndcg if first is None else first
        rows.append(
            f"| {backend} | {ndcg:.4f} | {100 * (ndcg - first):+.2f} "
            f"| {_rate(rates['passage'])} | {_rate(rates['query'])} "
            f"| {'cached' if model.load_seconds is None else f'{model.load_seconds:.1f}'} |"
        )
        print(f"  done: {rows[-1]}", flush=True)  # indented: the table below is the result
    print("| backend | NDCG@10 | delta (points) | passages/s | queries/s | load s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print(json.dumps({"cache": str(args.cache), "threads": args.threads}))


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1f}"


if __name__ == "__main__":
    main()
