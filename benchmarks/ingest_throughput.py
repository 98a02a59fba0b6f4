"""Throughput of the bulk loader, and the client's own cost per document.

    .venv/bin/python -m benchmarks.ingest_throughput [--docs 5000] [--concurrency 4]

Two runs over the same generated corpus (JSON Lines, ids d0.., texts of 20-80
words, deterministic):

1. through the emulated domain (tests/support/opensearch_emulator.py, real HTTP
   on 127.0.0.1, SigV4 verified, responses checked against the OpenSearch API
   specification, embeddings by the hashing stand-in): end-to-end docs/s. The
   emulator dominates this figure; it says nothing about a real domain, whose
   limit is the SageMaker endpoint.
2. the same load with the HTTP round trip replaced by an instant answer (a
   fake urllib3 pool behind opensearch-py; everything else is real: reading and
   parsing the file, building the NDJSON body, SigV4 signing, decoding the
   answer, per-item decisions, dead-letter and progress bookkeeping): the
   client's own overhead per document. The fake answer is built from the
   request (one item per document), which is counted in, so this is an upper
   bound of the client's overhead.

A script that prints numbers, not a test: timings on a shared 2-core machine vary.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials

from tools.ingest.deadletter import DeadLetters
from tools.ingest.loader import Loader, Settings
from tools.ingest.pace import Backoff, Pace
from tools.ingest.sources import Fields, read
from tools.opensearch import connect

WORDS = ("river ferry island summer lighthouse stripes lamp harbour tide coast village "
         "market bridge station winter forest valley mountain road train").split()  # fmt: skip


def corpus(path: Path, count: int) -> None:
    rng = random.Random(42)  # noqa: S311 - reproducible texts, not secrets
    with path.open("w") as handle:
        for i in range(count):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
            handle.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")


def load(client: Any, index: str, field: str, source: Path, concurrency: int,
         dead: Path) -> tuple[float, int]:  # fmt: skip
    jitter = random.Random(1)  # noqa: S311 - backoff jitter, not a secret
    pace = Pace(max_concurrency=concurrency, max_batch=100, min_batch=10,
                backoff=Backoff(0.01, 0.1, jitter))  # fmt: skip
    letters = DeadLetters(dead)
    letters.open()
    loader = Loader(client, Settings(index=index), pace, letters)
    started = time.perf_counter()
    counts = loader.run(read(str(source), "jsonl", Fields(), field))
    seconds = time.perf_counter() - started
    letters.close(finished=True)
    return seconds, counts.indexed


class _Response:
    status = 200

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.headers = _Headers()


class _Headers(dict):  # type: ignore[type-arg]
    def get_all(self, name: str, default: Any) -> Any:
        return default


class InstantPool:
    """Answers every bulk request at once with one acknowledged item per document."""

    def urlopen(self, method: str, url: str, body: Any, **kw: Any) -> _Response:
        lines = body.decode().split("\n") if isinstance(body, bytes) else body.split("\n")
        items = [
            {"index": {"_index": "i", "_id": json.loads(line)["index"]["_id"], "status": 201,
                       "result": "created"}}
            for line in lines[0:-1:2]
        ]  # fmt: skip
        return _Response(json.dumps({"took": 0, "errors": False, "items": items}).encode())

    def close(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    from tests.tools.conftest import CLIENT, FIELD, INDEX, REGION, deployed

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "corpus.jsonl"
        corpus(source, args.docs)
        credentials = Credentials(CLIENT.access_key, CLIENT.secret_key, CLIENT.session_token)
        setup = deployed.__wrapped__()  # the test fixture's domain, as the ML setup leaves it
        domain = next(setup).domain
        client = connect(domain.endpoint, REGION, credentials, pool_maxsize=args.concurrency + 1)
        seconds, done = load(client, INDEX, FIELD, source, args.concurrency, Path(tmp) / "a")
        print(
            f"emulated domain: {done} documents in {seconds:.2f} s = {done / seconds:.0f} "
            f"docs/s ({domain.bulk_requests} bulk requests, {domain.bulk_predict_calls} predicts)"
        )
        domain.stop()
        offline = connect("https://search-x.us-east-1.es.amazonaws.com", REGION, credentials)
        connection = offline.transport.connection_pool.get_connection()
        connection.pool = InstantPool()
        seconds, done = load(offline, INDEX, FIELD, source, args.concurrency, Path(tmp) / "b")
        print(
            f"client alone (instant answers): {done / seconds:.0f} docs/s, "
            f"{seconds / done * 1e6:.0f} us of client overhead per document"
        )


if __name__ == "__main__":
    main()
