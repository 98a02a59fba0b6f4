"""What the evaluation's ``stack`` target needs on top of the shared OpenSearch emulator.

Kept apart from ``tests/support/opensearch_emulator.py`` as a subclass that
only *adds* APIs, through the base's public :meth:`routes` hook; everything the
base enforces (SigV4, access policy, fault injection, fine-grained
permissions, ML Commons rules, specification checks of requests and
responses, the call log) still applies, ``_bulk`` included: its NDJSON body is
decoded by the route's own ``parse_body`` inside the base's front end.

Added, each with the rules of the real thing that the tool could get wrong:

* ``POST /{index}/_bulk``: NDJSON with ``Content-Type: application/x-ndjson``
  and a final newline (OpenSearch refuses a body without it), ``index``/
  ``create`` actions only, per-item results in request order with ``errors``
  set when any item failed; semantic fields are embedded as ``passage`` through
  the base class's document path. Fault hooks: ``reject_items`` (the next N
  items get 429 ``es_rejected_execution_exception``, what a saturated write
  queue looks like), ``remote_throttle_items`` (the next N items fail with
  400 and the relayed remote throttling message, how a throttled SageMaker
  endpoint can surface) and ``refuse_docs`` (ids that fail with 400
  ``mapper_parsing_exception``). An error of the document path (the model not
  deployed, say) is an item error too, as in a real bulk response.
* ``GET /{index}/_count``.
* ``match`` on a ``text`` field scored with Lucene's BM25 (k1=1.2, b=0.75,
  lower-cased ``\\w+`` tokens as the standard analyzer roughly does); a
  document matching no term is not a hit.
* ``knn`` on a ``knn_vector`` field: the field must exist in the mapping and
  the vector must have its dimension; cosine scores are ``(1 + cos) / 2``.
* ``nested`` around a ``knn`` on a chunked semantic field's vectors (score_mode
  ``max`` or ``avg``): the symmetric system's query on a chunked index.
* ``hybrid`` queries over the base emulator's search pipelines (whose
  ``normalization-processor`` rules are sourced there): a ``hybrid`` query must
  name an existing pipeline with that processor, and the number of weights must
  equal the number of sub-queries (neural-search 3.7.0.0
  ``processor/combination/ScoreCombinationUtil.java:98-110``). Normalisation:
  min-max per sub-query; combination: weighted arithmetic mean, a document
  absent from a sub-query scoring 0 there.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from tests.support.opensearch_emulator import (
    ApiError,
    OpenSearchEmulator,
    Outcome,
    Request,
    Route,
    search_pipeline_of,
)

# How an ingest item fails when the endpoint behind the connector throttles: ML
# Commons relays the remote error in a 400 (the status is not the endpoint's 429).
REMOTE_THROTTLED = (
    'Error from remote service: {"message":"ThrottlingException: Rate exceeded for InvokeEndpoint"}'
)


def _terms(text: Any) -> list[str]:
    return re.findall(r"\w+", str(text).lower())


def ndjson_body(raw: bytes, headers: dict[str, str]) -> list[Any]:
    """Decode a ``_bulk`` body as OpenSearch does: NDJSON lines, newline-terminated.

    A route parser (not the base's one-JSON-document decoding) because a bulk
    body is a sequence of documents; the rules are the ones a bulk client can
    get wrong: the media type (406 otherwise) and the final newline.
    """
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/x-ndjson", "application/json"):
        raise ApiError(
            406, "content_type_exception", f"Content-Type header [{media}] is not supported"
        )
    text = raw.decode("utf-8")
    if not text.endswith("\n"):
        raise ApiError(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        )
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise ApiError(400, "parsing_exception", "invalid NDJSON line") from None


class SearchEmulator(OpenSearchEmulator):
    """The shared emulator plus bulk ingest, counts, BM25, k-NN, hybrid and search pipelines."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reject_items = 0
        self.refuse_docs: set[str] = set()
        self.remote_throttle_items = 0
        self.bulk_requests = 0

    def routes(self) -> list[Route]:
        """Ahead of the base's routes, so ``_search`` here replaces the base's."""
        index = r"(?P<index>[^/_][^/]*)"
        read = "indices:data/read/search"
        extra = [
            Route("POST", r"/" + index + r"/_bulk", "indices:data/write/bulk", self._bulk,
                  parse_body=ndjson_body),
            Route("GET", r"/" + index + r"/_count", read, self._count),
            Route("POST", r"/" + index + r"/_count", read, self._count),
            Route("POST", r"/" + index + r"/_search", read, self._eval_search),
            Route("GET", r"/" + index + r"/_search", read, self._eval_search),
        ]  # fmt: skip
        return [*extra, *super().routes()]

    # -- bulk and count

    def _bulk(self, r: Request, index: str) -> Outcome:
        self._index(index)
        lines = r.body
        self.bulk_requests += 1
        items: list[dict[str, Any]] = []
        position = 0
        while position < len(lines):
            action = lines[position]
            if not isinstance(action, dict) or len(action) != 1:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{position + 1}]",
                )
            ((kind, meta),) = action.items()
            if kind not in ("index", "create"):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"the emulator supports index/create, not [{kind}]",
                )
            if position + 1 >= len(lines) or not isinstance(lines[position + 1], dict):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                )
            source = lines[position + 1]
            position += 2
            if meta.get("_index", index) != index:
                raise ApiError(
                    400, "illegal_argument_exception", "_index differs from the path's index"
                )
            doc_id = str(meta.get("_id"))
            if self.reject_items > 0:
                self.reject_items -= 1
                items.append(
                    self._item_error(
                        kind,
                        index,
                        doc_id,
                        429,
                        "es_rejected_execution_exception",
                        "rejected execution: write queue is full",
                    )
                )
                continue
            if doc_id in self.refuse_docs:
                items.append(
                    self._item_error(
                        kind,
                        index,
                        doc_id,
                        400,
                        "mapper_parsing_exception",
                        f"failed to parse document [{doc_id}]",
                    )
                )
                continue
            if self.remote_throttle_items > 0:
                self.remote_throttle_items -= 1
                items.append(
                    self._item_error(kind, index, doc_id, 400, "status_exception", REMOTE_THROTTLED)
                )
                continue
            try:
                outcome = self._doc_put(
                    Request(r.principal, "PUT", f"/{index}/_doc/{doc_id}", {}, source),
                    index,
                    doc_id,
                )
            except ApiError as error:  # e.g. the model is not deployed: an item error, as for real
                items.append(
                    self._item_error(
                        kind, index, doc_id, error.status, error.error_type, error.reason
                    )
                )
                continue
            items.append({kind: {**outcome.body, "status": outcome.status}})
        errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
        return Outcome(200, {"took": 1, "errors": errors, "items": items})

    @staticmethod
    def _item_error(kind: str, index: str, doc_id: str, status: int, etype: str, reason: str):
        return {kind: {"_index": index, "_id": doc_id, "status": status,
                       "error": {"type": etype, "reason": reason}}}  # fmt: skip

    def _count(self, r: Request, index: str) -> Outcome:
        state = self._index(index)
        return Outcome(
            200,
            {
                "count": len(state.docs),
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            },
        )

    # -- search

    def _eval_search(self, r: Request, index: str) -> Outcome:
        body = r.body or {}
        query = body.get("query") or {}
        size = int(body.get("size", 10))
        # ?search_pipeline=, else the index's index.search.default_pipeline (the base
        # emulator's default search pipeline section has the sources).
        pipeline_id = search_pipeline_of(self, r, index)
        kind = next(iter(query), None) if isinstance(query, dict) and len(query) == 1 else None
        if kind == "hybrid":
            return self._hybrid(r, index, query["hybrid"], size, pipeline_id)
        if kind in ("knn", "match", "nested") and self._scored_kind(index, query):
            scored = self._score(r, index, query, size)
            return Outcome(200, self._page(index, scored, size))
        return self._search(r, index)

    def _scored_kind(self, index: str, query: dict[str, Any]) -> bool:
        """``match`` on a text field or ``knn``: the rest stays with the base class."""
        ((kind, spec),) = query.items()
        if kind in ("knn", "nested"):
            return True
        ((name, _),) = spec.items()
        prop = self._index(index).mappings["properties"].get(name, {})
        return prop.get("type") == "text"

    def _score(
        self, r: Request, index: str, query: dict[str, Any], size: int
    ) -> list[tuple[float, str]]:
        ((kind, spec),) = query.items()
        state = self._index(index)
        if kind == "neural":
            hits = self._search(
                Request(
                    r.principal, "POST", f"/{index}/_search", {}, {"query": query, "size": size}
                ),
                index,
            )
            return [(h["_score"], h["_id"]) for h in hits.body["hits"]["hits"]]
        if kind == "nested":
            return self._nested_knn(state, spec, size)
        ((name, params),) = spec.items()
        if kind == "match":
            text = params.get("query") if isinstance(params, dict) else params
            return self._bm25(state.docs, name, _terms(text))
        if kind == "knn":
            vector, k = params.get("vector"), int(params.get("k", size))
            dimension = self._vector_dimension(state.mappings["properties"], name)
            if not isinstance(vector, list) or len(vector) != dimension:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"Query vector has invalid dimension: {len(vector or [])}. "
                    f"Dimension should be: {dimension}",
                )
            scored = []
            for doc_id, source in state.docs.items():
                stored = source
                for part in name.split("."):
                    stored = stored.get(part) if isinstance(stored, dict) else None
                if stored:
                    cosine = sum(a * b for a, b in zip(vector, stored, strict=True))
                    scored.append(((1 + cosine) / 2, doc_id))
            scored.sort(key=lambda t: -t[0])
            return scored[:k]
        raise ApiError(
            400, "parsing_exception", f"the emulator does not support [{kind}] in hybrid"
        )

    def _nested_knn(self, state: Any, spec: dict[str, Any], size: int) -> list[tuple[float, str]]:
        """``nested`` around a ``knn`` on the chunks' vectors: a document scores by its chunks.

        What tools.evaluate's symmetric system sends for a chunked semantic field, as
        neural-search itself does for a neural query (NeuralQueryBuilder.java:786-787).
        score_mode: ``max`` or ``avg`` (core NestedQueryBuilder's default is ``avg``).
        """
        path, inner = spec.get("path"), spec.get("query") or {}
        mode = spec.get("score_mode", "avg")
        if set(inner) != {"knn"} or mode not in ("max", "avg"):
            raise ApiError(400, "parsing_exception", "the emulator supports nested knn only")
        ((name, params),) = inner["knn"].items()
        if not isinstance(path, str) or not name.startswith(path + "."):
            raise ApiError(400, "query_shard_exception", f"[nested] field [{name}] not in [{path}]")
        vector, k = params.get("vector"), int(params.get("k", size))
        dimension = self._vector_dimension(state.mappings["properties"], name)
        if not isinstance(vector, list) or len(vector) != dimension:
            raise ApiError(400, "illegal_argument_exception",
                           f"Query vector has invalid dimension: {len(vector or [])}. "
                           f"Dimension should be: {dimension}")  # fmt: skip
        scored = []
        for doc_id, source in state.docs.items():
            chunks: Any = source
            for part in path.split("."):
                chunks = chunks.get(part) if isinstance(chunks, dict) else None
            vectors = [c.get(name[len(path) + 1 :]) for c in chunks or [] if isinstance(c, dict)]
            cosines = [sum(a * b for a, b in zip(vector, v, strict=True)) for v in vectors if v]
            if cosines:
                best = max(cosines) if mode == "max" else sum(cosines) / len(cosines)
                scored.append(((1 + best) / 2, doc_id))
        scored.sort(key=lambda t: -t[0])
        return scored[:k]

    @staticmethod
    def _vector_dimension(properties: dict[str, Any], path: str) -> int:
        node: Any = {"properties": properties}
        for part in path.split("."):
            node = (node.get("properties") or {}).get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get("type") != "knn_vector":
            raise ApiError(
                400, "illegal_argument_exception", f"Field '{path}' is not knn_vector type."
            )
        return int(node["dimension"])

    @staticmethod
    def _bm25(
        docs: dict[str, dict[str, Any]], field: str, terms: list[str]
    ) -> list[tuple[float, str]]:
        k1, b = 1.2, 0.75
        tokens = {
            d: _terms(s.get(field, "")) for d, s in docs.items() if isinstance(s.get(field), str)
        }
        if not tokens:
            return []
        avgdl = sum(len(t) for t in tokens.values()) / len(tokens)
        df = Counter(term for t in tokens.values() for term in set(t))
        scored = []
        for doc_id, doc_terms in tokens.items():
            tf = Counter(doc_terms)
            score = 0.0
            for term in terms:
                if tf[term]:
                    idf = math.log(1 + (len(tokens) - df[term] + 0.5) / (df[term] + 0.5))
                    norm = k1 * (1 - b + b * len(doc_terms) / avgdl)
                    score += idf * tf[term] / (tf[term] + norm)
            if score > 0:
                scored.append((score, doc_id))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return scored

    def _hybrid(
        self, r: Request, index: str, spec: dict[str, Any], size: int, pipeline_id: str | None
    ) -> Outcome:
        processor = None
        if pipeline_id is not None:
            for p in self.pipelines[pipeline_id].get("phase_results_processors") or []:
                processor = p.get("normalization-processor") or processor
        if processor is None:
            raise ApiError(
                400,
                "illegal_argument_exception",
                "hybrid query needs a search pipeline with a normalization-processor "
                "(the emulator requires one)",
            )
        queries = spec.get("queries") or []
        weights = ((processor.get("combination") or {}).get("parameters") or {}).get("weights") or [
            1 / len(queries)
        ] * len(queries)
        if len(weights) != len(queries):
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"number of weights [{len(weights)}] must match number of sub-queries "
                f"[{len(queries)}] in hybrid query",
            )
        technique = (processor.get("normalization") or {}).get("technique", "min_max")
        if technique != "min_max":
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"the emulator implements min_max only, not {technique}",
            )
        combined: dict[str, float] = {}
        for sub, weight in zip(queries, weights, strict=True):
            scored = self._score(r, index, sub, size)[:size]
            if not scored:
                continue
            low, high = min(s for s, _ in scored), max(s for s, _ in scored)
            for score, doc_id in scored:
                norm = 1.0 if high == low else (score - low) / (high - low)
                combined[doc_id] = combined.get(doc_id, 0.0) + weight * norm
        total = sum(weights)
        ranked = sorted(((s / total, d) for d, s in combined.items()), key=lambda t: -t[0])
        return Outcome(200, self._page(index, ranked, size))

    def _page(self, index: str, scored: list[tuple[float, str]], size: int) -> dict[str, Any]:
        top = scored[:size]
        hits = [{"_index": index, "_id": d, "_score": s} for s, d in top]
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": len(scored), "relation": "eq"},
                "max_score": max((s for s, _ in top), default=None),
                "hits": hits,
            },
        }
