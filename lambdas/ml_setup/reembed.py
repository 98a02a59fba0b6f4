"""Re-embedding copy from an old semantic index to its replacement.

Why ``_reindex`` re-embeds: the destination's semantic field runs
neural-search's system processor on every indexed document, and the
``_reindex`` bulk writes are index requests like any other (inferred from
OpenSearch core: the system ingest pipeline is resolved per index request in
the bulk action, not read here). The processor embeds each semantic field's
raw text with the destination mapping's ``model_id``
(neural-search 3.7.0.0 src/main/java/org/opensearch/neuralsearch/processor/
semantic/SemanticFieldProcessor.java:505-531) and reuses an existing
embedding only when the mapping sets ``skip_existing_embedding``
(SemanticFieldProcessor.java:242-251; util/SemanticMappingUtils.java:513-530),
which our mappings never do: the copied ``<field>_semantic_info`` is
overwritten with the new model's vector. (Excluding it from the copied source
would be tidier, but the API specification's ``ReindexSource._source`` takes
field names to include only, so the copy relies on the overwrite.)

Writes during the copy: kept, not refused. The alias stays on the old index,
which keeps taking writes; catch-up rounds copy what they changed and only the
last, short one runs under ``index.blocks.write`` (catchup.py, which also
cancels an abandoned copy's task; docs/ml-setup.md, "Writes during the copy").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import catchup
from .common import SetupError
from .opensearch_client import OpenSearchClient

# How many documents' vectors are checked after the copy.
SAMPLE_SIZE = 5
# POSTs that change nothing (a retry cannot apply anything twice).
_READ_ONLY_POSTS = ("/_refresh", "/_count", "/_search", "/_cancel")


def calls(client: OpenSearchClient) -> catchup.Call:
    """catchup.py's transport over this package's client (errors raise OpenSearchError)."""

    def call(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        idempotent = method != "POST" or path.endswith(_READ_ONLY_POSTS)
        response = client.request(
            method, path, body=body, query=query, allow=allow, idempotent=idempotent
        )
        return response.status, response.body

    return call


def count(client: OpenSearchClient, index: str) -> int:
    client.request("POST", f"/{index}/_refresh", idempotent=True)
    response = client.request("POST", f"/{index}/_count", body={}, idempotent=True)
    body = response.body if isinstance(response.body, dict) else {}
    return int(body.get("count", 0))


@dataclass(frozen=True)
class Estimate:
    documents: int
    docs_per_second: float

    @property
    def seconds(self) -> float:
        return self.documents / self.docs_per_second if self.docs_per_second > 0 else math.inf


def minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{math.ceil(seconds)} s"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(1, math.ceil(seconds / 60))} min"


def verify(
    client: OpenSearchClient,
    source: str,
    dest: str,
    field: str,
    model_id: str,
    dimension: int,
) -> None:
    """Counts equal after refresh, and a sample of documents carries new-model vectors."""
    before, after = count(client, source), count(client, dest)
    if before != after:
        raise SetupError(f"copy incomplete: {source} has {before} documents, {dest} has {after}")
    response = client.request(
        "POST",
        f"/{dest}/_search",
        body={"size": SAMPLE_SIZE, "query": {"match_all": {}}},
        idempotent=True,
    )
    hits = (response.body or {}).get("hits", {}).get("hits", [])
    for hit in hits:
        info = (hit.get("_source") or {}).get(f"{field}_semantic_info") or {}
        vectors = stored_vectors(info)
        used = (info.get("model") or {}).get("id")
        if not vectors or any(len(v) != dimension for v in vectors) or used != model_id:
            raise SetupError(
                f"document {hit.get('_id')} in {dest} has no {dimension}-d vector from model "
                f"{model_id} after the copy"
            )


def stored_vectors(info: dict[str, Any]) -> list[list[Any]]:
    """Every vector of a ``<field>_semantic_info``, in either layout neural-search writes.

    Unchunked: ``{"embedding": [...]}``; chunked: ``{"chunks": [{"text", "embedding"}]}``
    (neural-search 3.7.0.0 processor/dto/SemanticFieldInfo.java:88-128). A chunked
    document without a chunk, or a chunk without a vector, gives an empty list.
    """
    if "chunks" in info:
        chunks = info.get("chunks")
        if not isinstance(chunks, list) or not chunks:
            return []
        vectors = [c.get("embedding") if isinstance(c, dict) else None for c in chunks]
        return vectors if all(isinstance(v, list) for v in vectors) else []  # type: ignore[return-value]
    vector = info.get("embedding")
    return [vector] if isinstance(vector, list) else []
