"""Command line: ``python -m tools.evaluate {local,stack,stats} --dataset NAME_OR_DIR ...``.

    # the model alone, no AWS (model directory of intfloat/multilingual-e5-small)
    python -m tools.evaluate local --dataset scifact --model-dir ~/models/multilingual-e5-small
    # a deployed environment (SigV4 with your AWS credentials)
    python -m tools.evaluate stack --dataset scifact --endpoint https://search-... \
        --model-id <asymmetric model id> --region eu-west-1
    # only the length statistics of the blog's first table
    python -m tools.evaluate stats --dataset nfcorpus --dataset scifact

Writes ``results.md``, ``results.json`` and ``results.png`` into ``--out``
and prints the Markdown. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tools.evaluate.chunking import parse_chunking
from tools.evaluate.datasets import Dataset, DatasetError, length_stats, resolve_dataset
from tools.evaluate.metrics import Run, drop_identical_ids, evaluate
from tools.evaluate.report import DatasetResult, markdown, write_all

DEFAULT_SYSTEMS = "symmetric,asymmetric,bm25,hybrid"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options shared by the targets, then each target's own."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dataset",
        action="append",
        required=True,
        help="BEIR dataset directory or name (scifact, nfcorpus, trec-covid, arguana, fiqa, ...); "
        "repeat for several",
    )
    common.add_argument("--split", default="test", help="qrels split (default: test)")
    common.add_argument(
        "--k", type=int, action="append", help="metric cut-off; repeat for several (default: 10)"
    )
    common.add_argument("--out", type=Path, default=Path("eval-results"), help="output directory")
    common.add_argument("--cache-dir", type=Path, default=None, help="dataset download cache")
    common.add_argument(
        "--keep-identical-ids",
        action="store_true",
        help="keep a query's own id in its results (BEIR drops it by default; matters for ArguAna)",
    )
    common.add_argument(
        "--max-queries", type=int, default=None, help="evaluate only the first N test queries"
    )
    common.add_argument(
        "--systems", default=DEFAULT_SYSTEMS, help=f"comma-separated (default: {DEFAULT_SYSTEMS})"
    )

    parser = argparse.ArgumentParser(
        prog="python -m tools.evaluate", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="target", required=True)

    local = sub.add_parser("local", parents=[common], help="our inference code in-process, no AWS")
    source = local.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model-dir",
        help="Hugging Face model directory, or 'bundled-minilm' for the small test model",
    )
    source.add_argument(
        "--server-url",
        help="a running model server instead (python -m tools.serve), e.g. http://127.0.0.1:8080",
    )
    local.add_argument(
        "--symmetric",
        choices=("passage", "query", "none"),
        default="passage",
        help="how the symmetric baseline embeds both sides (default: passage, as the stack does)",
    )

    local.add_argument(
        "--embedding-cache",
        type=Path,
        default=None,
        help="cache embeddings per text in this directory, written as they are computed, so a "
        "rerun or a killed run resumes (the same cache as benchmarks.fast_path_quality, e.g. "
        "~/.cache/e5-fast-path); default: no cache",
    )
    local.add_argument(
        "--chunking",
        action="append",
        default=[],
        help="a semantic field 'chunking' value as JSON (true, or a list of "
        '{"algorithm": ..., "parameters": {...}}); adds asymmetric[<setting>]; repeat for several',
    )
    local.add_argument(
        "--hybrid-weights",
        default="",
        help="semantic weights, comma-separated (BM25 gets 1 - w), e.g. 0.3,0.5,0.7,0.8; "
        "adds hybrid[<norm>,<w>] variants (with --hybrid-normalizations)",
    )
    local.add_argument(
        "--hybrid-normalizations",
        default="",
        help="comma-separated: min_max, l2 (default with --hybrid-weights: min_max)",
    )

    stack = sub.add_parser("stack", parents=[common], help="a deployed environment, over SigV4")
    stack.add_argument("--endpoint", required=True, help="OpenSearch domain URL (https://...)")
    stack.add_argument("--model-id", required=True, help="the deployed asymmetric model's id")
    stack.add_argument("--region", default=None, help="AWS region (default: from the AWS config)")
    stack.add_argument("--bulk-docs", type=int, default=100, help="documents per _bulk request")
    stack.add_argument("--max-retries", type=int, default=8, help="retries per 429/5xx")
    stack.add_argument("--keep-index", action="store_true", help="do not delete the index")
    stack.add_argument(
        "--search-pipeline",
        default=None,
        help="the deployed hybrid search pipeline (stack output HybridSearchPipelineName); "
        "default: a temporary one with the same min-max, 0.5/0.5 settings",
    )

    stack.add_argument(
        "--chunking",
        type=_chunking,
        default=False,
        help="the semantic field's chunking for the temporary index, as cdk.json's chunking "
        "key takes it: true, or a JSON list of steps such as "
        '\'[{"algorithm": "fixed_token_length", "parameters": {"token_limit": 384}}]\' '
        "(default: none)",
    )

    sub.add_parser("stats", parents=[common], help="dataset length statistics only")
    args = parser.parse_args(argv)
    args.k = sorted(set(args.k or [10]))
    if any(k < 1 for k in args.k):
        parser.error("--k must be a positive integer")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if args.target == "local":
        try:
            args.chunking = [parse_chunking(json.loads(raw)) for raw in args.chunking]
        except json.JSONDecodeError as exc:
            parser.error(f"--chunking: not JSON ({exc})")
        except ValueError as exc:
            parser.error(f"--chunking: {exc}")
        try:
            args.hybrid_weights = [float(w) for w in args.hybrid_weights.split(",") if w.strip()]
        except ValueError:
            parser.error(f"--hybrid-weights: {args.hybrid_weights!r} is not a list of numbers")
        norms = [n.strip() for n in args.hybrid_normalizations.split(",") if n.strip()]
        args.hybrid_normalizations = norms or (["min_max"] if args.hybrid_weights else [])
    if args.max_queries is not None and args.max_queries < 1:
        parser.error("--max-queries must be a positive integer")
    return args


def _chunking(text: str) -> bool | list[dict[str, object]]:
    """``--chunking``: JSON true/false or a list of steps (the server validates the steps)."""
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}") from None
    if isinstance(value, bool) or (
        isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
    ):
        return value
    raise argparse.ArgumentTypeError(f"expected true, false or a JSON list of steps, not {text!r}")


def limit_queries(dataset: Dataset, max_queries: int | None) -> Dataset:
    """Keep the first N test queries (a quick look at a big dataset)."""
    if max_queries is None or max_queries >= len(dataset.qrels):
        return dataset
    keep = list(dataset.qrels)[:max_queries]
    return Dataset(
        name=dataset.name,
        corpus=dataset.corpus,
        queries={q: dataset.queries[q] for q in keep},
        qrels={q: dataset.qrels[q] for q in keep},
        missing_docs=dataset.missing_docs,
    )


def score_runs(
    runs: dict[str, Run], dataset: Dataset, ks: Sequence[int], keep_identical: bool
) -> dict[str, dict[str, float]]:
    """Each system's mean metrics."""
    out: dict[str, dict[str, float]] = {}
    for system, run in runs.items():
        if not keep_identical:
            run = drop_identical_ids(run)
        out[system] = evaluate(dataset.qrels, run, ks)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen target on every dataset, print the tables, write the files."""
    args = parse_args(argv)
    started = time.monotonic()
    try:
        datasets = [
            limit_queries(
                resolve_dataset(spec, split=args.split, cache_dir=args.cache_dir),
                args.max_queries,
            )
            for spec in args.dataset
        ]
        # One extra hit per query so that dropping the query's own id still leaves k.
        depth = max(args.k) + (0 if args.keep_identical_ids else 1)
        results: list[DatasetResult] = []
        meta: dict[str, object] = {"target": args.target, "k": args.k, "systems": args.systems}
        if args.target == "local":
            from tools.evaluate.local import (
                cached_embedder,
                in_process,
                load_embedding_model,
                resolve_model_dir,
                run_local,
                server_embedder,
                without_prefixes,
            )

            if args.server_url:
                embed, embed_bare = server_embedder(args.server_url), None
                meta.update(server_url=args.server_url)
            else:
                model = load_embedding_model(args.model_dir)
                embed, embed_bare = in_process(model)
                if args.embedding_cache is not None:
                    model_dir = resolve_model_dir(args.model_dir)
                    embed = cached_embedder(model, model_dir, args.embedding_cache)
                    embed_bare = cached_embedder(
                        without_prefixes(model), model_dir, args.embedding_cache
                    )
                    meta.update(embedding_cache=str(args.embedding_cache))
                meta.update(model_dir=str(args.model_dir))
            meta.update(
                symmetric=args.symmetric,
                chunking=[c.label() for c in args.chunking],
                hybrid_weights=args.hybrid_weights,
                hybrid_normalizations=args.hybrid_normalizations,
            )
            for ds in datasets:
                runs = run_local(
                    ds,
                    embed,
                    depth=depth,
                    systems=args.systems,
                    symmetric_mode=args.symmetric,
                    embed_bare=embed_bare,
                    chunkings=args.chunking,
                    hybrid_weights=args.hybrid_weights,
                    hybrid_normalizations=args.hybrid_normalizations,
                )
                results.append(_result(ds, score_runs(runs, ds, args.k, args.keep_identical_ids)))
        elif args.target == "stack":
            from tools.evaluate.stack import StackTarget, signed_client

            # --max-retries bounds both the request retries and the item resends.
            client = signed_client(args.endpoint, args.region, max_retries=args.max_retries)
            target = StackTarget(
                client,
                model_id=args.model_id,
                bulk_docs=args.bulk_docs,
                max_retries=args.max_retries,
                keep_index=args.keep_index,
                search_pipeline=args.search_pipeline,
                chunking=args.chunking,
            )
            meta.update(endpoint=args.endpoint, model_id=args.model_id, symmetric="passage",
                        chunking=args.chunking)  # fmt: skip
            for ds in datasets:
                runs = target.run(ds, depth=depth, systems=args.systems)
                results.append(_result(ds, score_runs(runs, ds, args.k, args.keep_identical_ids)))
        else:
            results = [_result(ds, {}) for ds in datasets]
    except (DatasetError, OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta["seconds"] = round(time.monotonic() - started, 1)
    paths = write_all(results, args.out, meta)
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _result(dataset: Dataset, metrics: dict[str, dict[str, float]]) -> DatasetResult:
    notes = []
    if dataset.missing_docs:
        notes.append(
            f"{dataset.missing_docs} judged documents are not in the corpus "
            "(counted as relevant and unretrievable)"
        )
    return DatasetResult(
        dataset=dataset.name, stats=length_stats(dataset), metrics=metrics, notes=notes
    )


if __name__ == "__main__":
    sys.exit(main())
