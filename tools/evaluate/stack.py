"""The ``stack`` target: measure a deployed environment through its OpenSearch API, over SigV4.

Everything happens in a temporary index (and, for hybrid, a temporary search
pipeline) whose names start with ``eval-`` and carry a random suffix, so a run
never touches the application's own index and two runs never collide. Both are
deleted in a ``finally``, whatever happened, unless ``--keep-index`` is given.

Systems and how each is asked:

* ``asymmetric``: a ``neural`` query on the semantic field. OpenSearch embeds
  the query with content type ``query`` and the passages were embedded at
  ingest with ``passage``: the product as users get it.
* ``symmetric``: the *same* model and the *same* index, with the query
  embedded as a passage (``_predict`` with content type ``PASSAGE``) and sent
  as a ``knn`` query on the semantic field's vector. Both sides then carry the
  ``passage: `` prefix: "both sides embedded the same way" without a second
  endpoint, connector or ingest. (The blog does not say exactly how its
  symmetric baseline was run; the local target can also run "no prefix".)
* ``bm25``: a ``match`` query on a plain ``text`` copy of the passage.
* ``hybrid``: a ``hybrid`` query (that match + that neural query) through a
  search pipeline whose normalization processor does min-max normalisation and
  a weighted arithmetic mean (0.3 BM25, 0.7 semantic).

Ingest is the part that meets the endpoint's throughput limits: ``_bulk``
requests, retried with exponential backoff on HTTP 429/5xx, and items that
failed with 429, 5xx or a relayed throttling error of the model endpoint
resent; any item that fails for another reason stops the run with its error.
The indexed count is then checked against the corpus.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from tqdm import tqdm

from tools.evaluate.datasets import Dataset
from tools.evaluate.metrics import Run

SEMANTIC_FIELD = "passage_text"
BM25_FIELD = "bm25_text"
HYBRID_WEIGHTS = (0.3, 0.7)  # (bm25, semantic): must sum to 1, neural-search checks it
RETRY_STATUSES = frozenset({429, 502, 503, 504})
PREDICT_BATCH = 10  # texts per _predict call, like neural-search's ingest batches
SYSTEMS = ("symmetric", "asymmetric", "bm25", "hybrid")


class StackError(RuntimeError):
    """The deployed environment refused or failed something; the message says what."""


@dataclass(frozen=True)
class Response:
    """Status and decoded JSON body of one HTTP exchange."""

    status: int
    body: Any


CredentialsSource = Callable[[], Any]  # returns botocore (ReadOnly)Credentials


class SignedClient:
    """A minimal OpenSearch HTTP client: SigV4 (service ``es``) on every request, bounded retries.

    Not opensearch-py: we need a dozen calls, and owning the signing and the
    retry rule (which statuses, how long) is simpler than configuring them.
    Credentials are fetched per request so that refreshed role credentials
    are used on long ingests.
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: CredentialsSource,
        *,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # The stacks' DomainEndpoint output is a bare host name: HTTPS is implied.
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"--endpoint {endpoint!r} is not an http(s) URL")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.region = region
        self.credentials = credentials
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.sleep = sleep
        self.session = requests.Session()
        self.retries_done = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        ndjson: Iterable[dict[str, Any]] | None = None,
    ) -> Response:
        """Send one request; retry 429/502/503/504 and dropped connections with backoff."""
        url = self.endpoint + path + (f"?{urlencode(params)}" if params else "")
        headers: dict[str, str] = {}
        data: bytes | None = None
        if ndjson is not None:
            data = "".join(json.dumps(line) + "\n" for line in ndjson).encode()
            headers["Content-Type"] = "application/x-ndjson"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            signed = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
            SigV4Auth(self.credentials(), "es", self.region).add_auth(signed)
            try:
                raw = self.session.request(
                    method, url, data=data, headers=dict(signed.headers), timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # Safe to resend: every write here is idempotent (explicit _id, PUT, DELETE).
                if attempt >= self.max_retries:
                    raise StackError(f"{method} {path}: no answer ({exc})") from None
                status, payload = None, None
            else:
                status = raw.status_code
                try:
                    payload = raw.json() if raw.content else None
                except ValueError:
                    payload = raw.text
                if status not in RETRY_STATUSES or attempt >= self.max_retries:
                    return Response(status, payload)
            attempt += 1
            self.retries_done += 1
            delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
            self.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send and return the body; a non-2xx answer raises :class:`StackError` naming it."""
        response = self.request(method, path, **kwargs)
        if not 200 <= response.status < 300:
            raise StackError(f"{method} {path}: HTTP {response.status}: {_reason(response.body)}")
        return response.body


def _reason(body: Any) -> str:
    """The error's reason from an OpenSearch, security-plugin or AWS front-end error body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
        for key in ("message", "Message", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:300]


def _throttled(item: dict[str, Any]) -> bool:
    """A bulk item refused because the model endpoint throttled.

    ML Commons relays a remote model's error inside its own status (often
    400), so the endpoint's throttling is recognised by its message too;
    such items are worth resending, unlike a document that cannot be parsed.
    """
    reason = _reason(item).lower()
    return "throttl" in reason or "too many requests" in reason or "rate exceeded" in reason


def signed_client(endpoint: str, region: str | None, **kwargs: Any) -> SignedClient:
    """A client with the default AWS credential chain (env, profile, SSO, instance role)."""
    import boto3

    session = boto3.Session(region_name=region)
    if session.region_name is None:
        raise ValueError("no AWS region: pass --region or configure one")
    if session.get_credentials() is None:
        raise ValueError("no AWS credentials found (environment, profile, SSO or instance role)")

    def credentials() -> Any:
        return session.get_credentials().get_frozen_credentials()

    return SignedClient(endpoint, session.region_name, credentials, **kwargs)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "dataset"


class StackTarget:
    """Runs the four systems for one dataset in a temporary index, and always cleans up."""

    def __init__(
        self,
        client: SignedClient,
        *,
        model_id: str,
        bulk_docs: int = 100,
        max_retries: int = 8,
        keep_index: bool = False,
        item_backoff: float = 1.0,
        progress: bool = True,
    ) -> None:
        if bulk_docs < 1:
            raise ValueError("--bulk-docs must be a positive integer")
        self.client = client
        self.model_id = model_id
        self.bulk_docs = bulk_docs
        self.max_retries = max_retries
        self.keep_index = keep_index
        self.item_backoff = item_backoff
        self.progress = progress
        self.last_index: str | None = None
        self.last_throughput: float | None = None

    # -- the run

    def run(
        self, dataset: Dataset, *, depth: int, systems: Sequence[str] = SYSTEMS
    ) -> dict[str, Run]:
        """Create, ingest, query, and delete; returns each system's run."""
        unknown = [s for s in systems if s not in SYSTEMS]
        if unknown:
            raise ValueError(
                f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}"
            )
        suffix = uuid.uuid4().hex[:8]
        index = f"eval-{_slug(dataset.name)}-{suffix}"
        pipeline = f"{index}-hybrid"
        self.last_index = index
        # Deleted whatever happens, even after a failed create (a timed-out PUT
        # may still have created it); a 404 on delete is fine.
        made_pipeline = "hybrid" in systems
        try:
            vector_field = self.create_index(index)
            self.ingest(index, dataset)
            if made_pipeline:
                self.create_pipeline(pipeline)
            runs: dict[str, Run] = {}
            for system in systems:
                runs[system] = self.query_all(system, index, pipeline, vector_field, dataset, depth)
            return runs
        finally:
            if not self.keep_index:
                self._cleanup(index, pipeline if made_pipeline else None)
            else:
                print(
                    f"kept index {index}" + (f" and pipeline {pipeline}" if made_pipeline else "")
                )

    def _cleanup(self, index: str | None, pipeline: str | None) -> None:
        """Delete what this run created; a failure here is reported, never hides the run's error."""
        for path in ([f"/_search/pipeline/{pipeline}"] if pipeline else []) + (
            [f"/{index}"] if index else []
        ):
            try:
                response = self.client.request("DELETE", path)
                if response.status not in (200, 404):
                    print(
                        f"warning: DELETE {path}: HTTP {response.status}: {_reason(response.body)}"
                        " - delete it by hand",
                        file=sys.stderr,
                    )
            except StackError as exc:
                print(f"warning: {exc} - delete it by hand", file=sys.stderr)

    # -- index and pipeline

    def create_index(self, index: str) -> str:
        """Create the semantic index and return the path of the vector OpenSearch derived for it."""
        self.client.ok(
            "PUT",
            f"/{index}",
            body={
                "settings": {
                    "index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}
                },
                "mappings": {
                    "properties": {
                        "doc_id": {"type": "keyword"},
                        BM25_FIELD: {"type": "text"},
                        SEMANTIC_FIELD: {"type": "semantic", "model_id": self.model_id},
                    }
                },
            },
        )
        body = self.client.ok("GET", f"/{index}")
        properties = body[index]["mappings"]["properties"]
        info = properties.get(f"{SEMANTIC_FIELD}_semantic_info", {}).get("properties", {})
        for name, spec in info.items():
            if spec.get("type") == "knn_vector":
                return f"{SEMANTIC_FIELD}_semantic_info.{name}"
        raise StackError(
            f"{index}: no knn_vector under {SEMANTIC_FIELD}_semantic_info in the mapping"
        )

    def create_pipeline(self, name: str) -> None:
        """The hybrid search pipeline: min-max normalisation, weighted arithmetic mean."""
        self.client.ok(
            "PUT",
            f"/_search/pipeline/{name}",
            body={
                "description": "temporary pipeline of python -m tools.evaluate",
                "phase_results_processors": [
                    {
                        "normalization-processor": {
                            "normalization": {"technique": "min_max"},
                            "combination": {
                                "technique": "arithmetic_mean",
                                "parameters": {"weights": list(HYBRID_WEIGHTS)},
                            },
                        }
                    }
                ],
            },
        )

    # -- ingest

    def ingest(self, index: str, dataset: Dataset) -> None:
        """Bulk-index the corpus; resend throttled items; check the count at the end."""
        doc_ids = list(dataset.corpus)
        started = time.monotonic()
        bar = tqdm(
            total=len(doc_ids), unit="doc", desc=f"ingest {dataset.name}", disable=not self.progress
        )
        try:
            for start in range(0, len(doc_ids), self.bulk_docs):
                batch = doc_ids[start : start + self.bulk_docs]
                self._bulk_batch(index, dataset, batch)
                bar.update(len(batch))
        finally:
            bar.close()
        elapsed = max(time.monotonic() - started, 1e-9)
        self.last_throughput = len(doc_ids) / elapsed
        print(
            f"ingested {len(doc_ids):,} documents in {elapsed:.1f} s "
            f"({self.last_throughput:.1f} docs/s, {self.client.retries_done} request retries)"
        )
        self.client.ok("POST", f"/{index}/_refresh")
        count = self.client.ok("GET", f"/{index}/_count")["count"]
        if count != len(doc_ids):
            raise StackError(f"{index}: {count} documents indexed, corpus has {len(doc_ids)}")

    def _bulk_batch(self, index: str, dataset: Dataset, batch: list[str]) -> None:
        pending = batch
        for attempt in range(self.max_retries + 1):
            lines: list[dict[str, Any]] = []
            for doc_id in pending:
                passage = dataset.corpus[doc_id]
                text = passage.indexed_text
                lines.append({"index": {"_id": doc_id}})
                lines.append({"doc_id": doc_id, BM25_FIELD: text, SEMANTIC_FIELD: text})
            body = self.client.ok("POST", f"/{index}/_bulk", ndjson=lines)
            if not body.get("errors"):
                return
            retry: list[str] = []
            for doc_id, item in zip(pending, body["items"], strict=True):
                result = next(iter(item.values()))
                status = int(result.get("status", 0))
                if 200 <= status < 300:
                    continue
                if status == 429 or status >= 500 or _throttled(result):
                    retry.append(doc_id)
                    continue
                raise StackError(
                    f"document {doc_id!r} was refused (HTTP {status}): {_reason(result)}"
                )
            if not retry:
                return
            pending = retry
            if attempt < self.max_retries:
                self.client.sleep(min(30.0, self.item_backoff * 2**attempt))
        raise StackError(
            f"{len(pending)} documents still throttled after {self.max_retries} retries "
            f"(first: {pending[0]!r}); lower --bulk-docs or scale the endpoint"
        )

    # -- queries

    def query_all(
        self,
        system: str,
        index: str,
        pipeline: str,
        vector_field: str,
        dataset: Dataset,
        depth: int,
    ) -> Run:
        """One search per query; the symmetric system embeds its queries in batches first."""
        query_ids = list(dataset.queries)
        vectors: dict[str, list[float]] = {}
        if system == "symmetric":
            for start in range(0, len(query_ids), PREDICT_BATCH):
                chunk = query_ids[start : start + PREDICT_BATCH]
                embedded = self.predict([dataset.queries[q] for q in chunk], "PASSAGE")
                vectors.update(zip(chunk, embedded, strict=True))
        run: dict[str, dict[str, float]] = {}
        for qid in tqdm(query_ids, unit="query", desc=system, disable=not self.progress):
            text = dataset.queries[qid]
            params = None
            if system == "asymmetric":
                query = self._neural(text, depth)
            elif system == "symmetric":
                query = {"knn": {vector_field: {"vector": vectors[qid], "k": depth}}}
            elif system == "bm25":
                query = self._match(text)
            else:
                query = {"hybrid": {"queries": [self._match(text), self._neural(text, depth)]}}
                params = {"search_pipeline": pipeline}
            body = self.client.ok(
                "POST",
                f"/{index}/_search",
                params=params,
                body={"size": depth, "_source": False, "query": query},
            )
            run[qid] = {hit["_id"]: float(hit["_score"]) for hit in body["hits"]["hits"]}
        return run

    @staticmethod
    def _neural(text: str, depth: int) -> dict[str, Any]:
        return {"neural": {SEMANTIC_FIELD: {"query_text": text, "k": depth}}}

    @staticmethod
    def _match(text: str) -> dict[str, Any]:
        return {"match": {BM25_FIELD: {"query": text}}}

    def predict(self, texts: list[str], content_type: str) -> list[list[float]]:
        """Embed through ML Commons ``_predict`` (what the connector sends to the endpoint)."""
        body = self.client.ok(
            "POST",
            f"/_plugins/_ml/models/{self.model_id}/_predict",
            body={"parameters": {"texts": texts, "content_type": content_type}},
        )
        try:
            vectors = body["inference_results"][0]["output"][0]["dataAsMap"]["response"]
        except (KeyError, IndexError, TypeError):
            raise StackError(f"_predict: unexpected response shape {str(body)[:200]}") from None
        if len(vectors) != len(texts):
            raise StackError(f"_predict: {len(vectors)} vectors for {len(texts)} texts")
        return vectors
