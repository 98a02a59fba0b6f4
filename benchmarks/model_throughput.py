"""Throughput of our embedding handler against the reference handler's algorithm.

    .venv/bin/python -m benchmarks.model_throughput [--model-dir DIR] [--requests 40]

Both sides run in this process on the same loaded model, the same torch
threads and the same texts, request by request in alternating order, so that
whatever else the (shared, 2-core) machine is doing weighs on both alike. The
baseline is the algorithm of the public reference handler for this model: the
whole request tokenised and padded together, the plain mean over
``last_hidden_state`` (padding included), no ordering. Ours is
``model/inference.py`` as the endpoint runs it (``input_fn`` -> ``predict_fn``
-> ``output_fn``); the baseline gets the same JSON decode/encode around it.

Workloads: (a) single short queries, (b) requests of 10 passages shaped like
BEIR corpora (about 200 words on average, log-normal spread, from 8 to 1200
words), generated deterministically from the bundled model's vocabulary with a
Zipf word distribution, so nothing is downloaded. Both sides use the same token
window (``--max-tokens``, default 512 like multilingual-e5-small).

It also prints each side's batch-invariance cosine (a short query alone vs. the
same query beside nine long passages) and, for the optional int8 switch, its
speed and its cosine against our fp32 vectors on the benchmark passages.

This is a script that prints numbers, not a test: timings on shared machines
vary, the ratios between columns of one run are what to read.
"""

from __future__ import annotations

import argparse
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

from model import inference
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
        request = inference.input_fn(body, "application/json")
        return inference.output_fn(inference.predict_fn(request, model), "application/json")

    return handle


# --------------------------------------------------------------------------- texts


def vocabulary(model: EmbeddingModel) -> list[str]:
    """Whole alphabetic words of the model's vocabulary, in vocabulary order.

    BERT's WordPiece vocabulary lists whole words roughly by corpus frequency,
    which makes vocabulary rank a usable Zipf rank.
    """
    vocab = sorted(model.tokenizer.get_vocab().items(), key=lambda item: item[1])
    words = [token for token, _ in vocab if token.isalpha() and token.isascii() and len(token) > 1]
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


# --------------------------------------------------------------------------- report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_throughput")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: bundled MiniLM")
    parser.add_argument("--requests", type=int, default=40, help="10-passage requests per side")
    parser.add_argument("--queries", type=int, default=200, help="single-query requests per side")
    parser.add_argument(
        "--threads",
        type=int,
        default=inference.default_threads(),
        help="torch threads, both sides (default: what one MMS worker gets, cores // workers)",
    )
    parser.add_argument("--max-tokens", type=int, default=512, help="token window, both sides")
    parser.add_argument("--token-budget", type=int, default=inference.DEFAULT_TOKEN_BUDGET)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--skip-int8", action="store_true", help="skip the int8 measurement")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run both workloads on both sides and print one table."""
    args = parse_args(argv)
    if args.model_dir is None:
        from tools.model_package import bundled_model_path

        args.model_dir = bundled_model_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = HandlerConfig(
        threads=args.threads, max_tokens=args.max_tokens, token_budget=args.token_budget
    )
    model = inference.load_model(args.model_dir, config)
    words = vocabulary(model)
    corpus = make_corpus(words, passages=args.requests * 10, queries=args.queries, seed=args.seed)
    lengths = [len(ids) for ids in model.tokenizer(corpus.passages, verbose=False)["input_ids"]]
    word_counts = [len(t.split()) for t in corpus.passages]

    load_before = os.getloadavg()
    handlers = {"ours": our_handler(model), "baseline": baseline_handler(model)}
    passage_bodies = [
        body(corpus.passages[i : i + 10], "passage") for i in range(0, len(corpus.passages), 10)
    ]
    query_bodies = [body([query], "query") for query in corpus.queries]
    run_interleaved(handlers, passage_bodies[:3] + query_bodies[:10], [10] * 3 + [1] * 10)  # warm
    passages = run_interleaved(handlers, passage_bodies, [10] * len(passage_bodies))
    queries = run_interleaved(handlers, query_bodies, [1] * len(query_bodies))
    load_after = os.getloadavg()

    invariance = {
        "ours": invariance_cosine(lambda texts: inference.embed(model, texts), corpus),
        "baseline": invariance_cosine(lambda texts: baseline_embed(model, texts), corpus),
    }

    print(f"model: {args.model_dir}  window: {model.max_tokens} tokens  threads: {args.threads}")
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"token budget {config.token_budget}, seed {args.seed}"
    )
    print(
        f"passages: {len(corpus.passages)}, words mean {statistics.mean(word_counts):.0f} "
        f"(median {statistics.median(word_counts):.0f}, min {min(word_counts)}, "
        f"max {max(word_counts)}), tokens mean {statistics.mean(lengths):.0f} "
        f"({sum(n > model.max_tokens for n in lengths)} truncated to the window)"
    )
    print(
        "load average before/after: "
        + " / ".join(", ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after))
    )
    print()
    header = (
        f"| {'handler':<9} | {'10-passage req: texts/s':>23} | {'p50 ms':>7} | {'p95 ms':>7} "
        f"| {'queries/s':>9} | {'query p50 ms':>12} | {'query p95 ms':>12} "
        f"| {'batch-invariance cos':>20} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name in ("ours", "baseline"):
        p, q = passages[name], queries[name]
        print(
            f"| {name:<9} | {p.texts_per_second():>23.1f} | {p.percentile_ms(50):>7.1f} "
            f"| {p.percentile_ms(95):>7.1f} | {q.texts_per_second():>9.1f} "
            f"| {q.percentile_ms(50):>12.2f} | {q.percentile_ms(95):>12.2f} "
            f"| {invariance[name]:>20.6f} |"
        )
    speedup = passages["ours"].texts_per_second() / passages["baseline"].texts_per_second()
    query_ratio = queries["ours"].percentile_ms(50) / queries["baseline"].percentile_ms(50)
    print()
    print(f"passage throughput, ours / baseline: {speedup:.2f}x")
    print(f"query p50 latency, ours / baseline: {query_ratio:.2f} (below 1 is faster)")

    if not args.skip_int8:
        report_int8(args.model_dir, config, model, corpus, passage_bodies)


def report_int8(
    model_dir: Path,
    config: HandlerConfig,
    fp32: EmbeddingModel,
    corpus: Corpus,
    passage_bodies: Sequence[bytes],
) -> None:
    """Speed and quality of EMBEDDING_INT8=true against our fp32 vectors."""
    int8 = inference.load_model(model_dir, replace(config, int8=True))
    timings = run_interleaved(
        {"fp32": our_handler(fp32), "int8": our_handler(int8)},
        passage_bodies,
        [10] * len(passage_bodies),
    )
    texts = ["passage: " + text for text in corpus.passages]
    cosines = torch.nn.functional.cosine_similarity(
        inference.embed(fp32, texts), inference.embed(int8, texts)
    )
    ratio = timings["int8"].texts_per_second() / timings["fp32"].texts_per_second()
    verdict = "acceptable" if cosines.min().item() >= 0.99 else "NOT acceptable (< 0.99)"
    print()
    print(
        f"int8 (EMBEDDING_INT8=true): {timings['int8'].texts_per_second():.1f} passages/s "
        f"= {ratio:.2f}x our fp32 in the same run; cosine vs fp32 on the {len(texts)} "
        f"benchmark passages: min {cosines.min().item():.4f}, "
        f"mean {cosines.mean().item():.4f} -> {verdict}"
    )


if __name__ == "__main__":
    main()
