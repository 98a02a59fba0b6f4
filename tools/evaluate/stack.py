"""The ``stack`` target: measure a deployed environment through its OpenSearch API, over SigV4.

Everything happens in a temporary index whose name starts with ``eval-`` and
carries a random suffix, so a run never touches the application's own index and
two runs never collide. Hybrid runs through the environment's deployed search
pipeline when ``--search-pipeline`` names it (stack output
``HybridSearchPipelineName``: what users get), else through a temporary
``eval-`` pipeline with the same defaults. What the run created is deleted in a
``finally``, whatever happened, unless ``--keep-index`` is given; a deployed
pipeline is only used, never changed or deleted.

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
  On a chunked index (``--chunking``) that vector is per chunk, under the nested
  ``chunks`` of ``<field>_semantic_info``: the ``knn`` is wrapped in a ``nested``
  query with ``score_mode: max``, the document scored by its best chunk, as
  neural-search scores a ``neural`` query on a chunked field (3.7.0.0
  ``query/NeuralQueryBuilder.java:786-787``).
* ``bm25``: a ``match`` query on a plain ``text`` copy of the passage.
* ``hybrid``: a ``hybrid`` query (that match + that neural query) through a
  search pipeline whose normalization processor does min-max normalisation and
  a weighted arithmetic mean (0.5 BM25, 0.5 semantic).

Ingest is the part that meets the endpoint's throughput limits: ``_bulk``
requests, retried with exponential backoff on HTTP 429/5xx, and items that
failed with 429, 5xx or a relayed throttling error of the model endpoint
resent; any item that fails for another reason stops the run with its error.
The indexed count is then checked against the corpus.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import tqdm

from tools.evaluate.datasets import Dataset
from tools.evaluate.metrics import Run
from tools.opensearch import SignedHttpClient, SignedHttpError, TransportError, error_text

SEMANTIC_FIELD = "passage_text"
BM25_FIELD = "bm25_text"
HYBRID_WEIGHTS = (0.5, 0.5)  # (bm25, semantic): must sum to 1, neural-search checks it
PREDICT_BATCH = 10  # texts per _predict call, like neural-search's ingest batches
SYSTEMS = ("symmetric", "asymmetric", "bm25", "hybrid")


class StackError(RuntimeError):
    """The deployed environment refused or failed something; the message says what."""


def _throttled(item: dict[str, Any]) -> bool:
    """A bulk item refused because the model endpoint throttled.

    ML Commons relays a remote model's error inside its own status (often
    400), so the endpoint's throttling is recognised by its message too;
    such items are worth resending, unlike a document that cannot be parsed.
    """
    reason = error_text(item).lower()
    return "throttl" in reason or "too many requests" in reason or "rate exceeded" in reason


def signed_client(
    endpoint: str,
    region: str | None,
    *,
    max_retries: int = 8,
    timeout: float = 120.0,
    **kwargs: Any,
) -> SignedHttpClient:
    """A retrying client with the default AWS credential chain (env, profile, SSO, instance role).

    Retries are on (unlike the smoke test's one attempt) because an ingest of
    thousands of documents will meet throttling and brief unavailability, and
    starting it over costs more than waiting. The timeout is long because a
    ``_bulk`` request embeds every document through the model endpoint.
    """
    import boto3

    session = boto3.Session(region_name=region)
    if session.region_name is None:
        raise ValueError("no AWS region: pass --region or configure one")
    if session.get_credentials() is None:
        raise ValueError("no AWS credentials found (environment, profile, SSO or instance role)")

    def credentials() -> Any:
        return session.get_credentials().get_frozen_credentials()

    return SignedHttpClient(
        endpoint,
        session.region_name,
        credentials,
        max_retries=max_retries,
        timeout=timeout,
        **kwargs,
    )


def _vector_query(vector_field: str, vector: list[float], depth: int) -> dict[str, Any]:
    """A ``knn`` on the semantic field's vector; on a chunked field, nested, best chunk wins."""
    knn = {"knn": {vector_field: {"vector": vector, "k": depth}}}
    path, _, _ = vector_field.rpartition(".")
    if path.endswith("_semantic_info.chunks"):
        return {"nested": {"path": path, "query": knn, "score_mode": "max"}}
    return knn


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "dataset"


class StackTarget:
    """Runs the four systems for one dataset in a temporary index, and always cleans up."""

    def __init__(
        self,
        client: SignedHttpClient,
        *,
        model_id: str,
        bulk_docs: int = 100,
        max_retries: int = 8,
        keep_index: bool = False,
        item_backoff: float = 1.0,
        progress: bool = True,
        search_pipeline: str | None = None,
        chunking: bool | list[dict[str, Any]] = False,
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
        self.search_pipeline = search_pipeline
        # The semantic field's ``chunking`` mapping parameter (README, Chunking).
        self.chunking = chunking
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
        pipeline = self.search_pipeline or f"{index}-hybrid"
        self.last_index = index
        # Deleted whatever happens, even after a failed create (a timed-out PUT
        # may still have created it); a 404 on delete is fine. A deployed
        # pipeline is the environment's: never ours to delete.
        made_pipeline = "hybrid" in systems and self.search_pipeline is None
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
                        f"warning: DELETE {path}: HTTP {response.status}: "
                        f"{error_text(response.body)} - delete it by hand",
                        file=sys.stderr,
                    )
            except TransportError as exc:
                print(
                    f"warning: DELETE {path}: no answer ({exc}) - delete it by hand",
                    file=sys.stderr,
                )

    def _ok(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """The client's ``ok`` with its failures as :class:`StackError`, naming the call.

        One exception type lets the CLI and the tests treat "the environment
        refused" alike, whether the refusal came from HTTP or from our checks.
        """
        try:
            return self.client.ok(method, path, body, params, **kwargs)
        except TransportError as exc:
            raise StackError(f"{method} {path}: no answer ({exc})") from exc
        except SignedHttpError as exc:
            raise StackError(str(exc)) from exc

    # -- index and pipeline

    def create_index(self, index: str) -> str:
        """Create the semantic index and return the path of the vector OpenSearch derived for it."""
        semantic: dict[str, Any] = {"type": "semantic", "model_id": self.model_id}
        if self.chunking:
            semantic["chunking"] = self.chunking
        self._ok(
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
                        SEMANTIC_FIELD: semantic,
                    }
                },
            },
        )
        body = self._ok("GET", f"/{index}")
        properties = body[index]["mappings"]["properties"]
        info = properties.get(f"{SEMANTIC_FIELD}_semantic_info", {}).get("properties", {})
        for name, spec in info.items():
            if spec.get("type") == "knn_vector":
                return f"{SEMANTIC_FIELD}_semantic_info.{name}"
            # Chunked: {"chunks": {"type": "nested", "properties": {"text", "embedding"}}}
            # (neural-search 3.7.0.0 mappingtransformer/SemanticInfoConfigBuilder.java:103-110).
            if spec.get("type") == "nested":
                for inner, inner_spec in (spec.get("properties") or {}).items():
                    if inner_spec.get("type") == "knn_vector":
                        return f"{SEMANTIC_FIELD}_semantic_info.{name}.{inner}"
        raise StackError(
            f"{index}: no knn_vector under {SEMANTIC_FIELD}_semantic_info in the mapping"
        )

    def create_pipeline(self, name: str) -> None:
        """The hybrid search pipeline: min-max normalisation, weighted arithmetic mean."""
        self._ok(
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
        self._ok("POST", f"/{index}/_refresh", idempotent=True)
        count = self._ok("GET", f"/{index}/_count")["count"]
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
            # Explicit ids make a resent bulk overwrite, never duplicate: idempotent.
            body = self._ok("POST", f"/{index}/_bulk", ndjson=lines, idempotent=True)
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
                    f"document {doc_id!r} was refused (HTTP {status}): {error_text(result)}"
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
                query = _vector_query(vector_field, vectors[qid], depth)
            elif system == "bm25":
                query = self._match(text)
            else:
                query = {"hybrid": {"queries": [self._match(text), self._neural(text, depth)]}}
                params = {"search_pipeline": pipeline}
            body = self._ok(
                "POST",
                f"/{index}/_search",
                {"size": depth, "_source": False, "query": query},
                params,
                idempotent=True,  # a search changes nothing
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
        body = self._ok(
            "POST",
            f"/_plugins/_ml/models/{self.model_id}/_predict",
            {"parameters": {"texts": texts, "content_type": content_type}},
            idempotent=True,  # an embedding changes nothing
        )
        try:
            vectors = body["inference_results"][0]["output"][0]["dataAsMap"]["response"]
        except (KeyError, IndexError, TypeError):
            raise StackError(f"_predict: unexpected response shape {str(body)[:200]}") from None
        if len(vectors) != len(texts):
            raise StackError(f"_predict: {len(vectors)} vectors for {len(texts)} texts")
        return vectors
