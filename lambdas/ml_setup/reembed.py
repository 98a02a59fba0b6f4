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


def set_write_block(client: OpenSearchClient, index: str, blocked: bool) -> None:
    client.request(
        "PUT",
        f"/{index}/_settings",
        body={"index": {"blocks": {"write": blocked}}},
        idempotent=True,
        allow=(404,) if not blocked else (),
    )


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


def start(
    client: OpenSearchClient, source: str, dest: str, field: str, requests_per_second: int
) -> str:
    """Start the throttled copy as a task; returns the task id (``node:number``)."""
    response = client.request(
        "POST",
        "/_reindex",
        query={
            "wait_for_completion": "false",
            "requests_per_second": str(requests_per_second),
        },
        body={
            "source": {"index": source},
            "dest": {"index": dest},
        },
        idempotent=False,
    )
    task = response.body.get("task") if isinstance(response.body, dict) else None
    if not task:
        raise SetupError(f"_reindex returned no task: {response.body!r}")
    return str(task)


@dataclass(frozen=True)
class TaskState:
    completed: bool
    created: int = 0
    failure: str | None = None


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def check(client: OpenSearchClient, task_id: str) -> TaskState:
    """One poll of ``GET _tasks/<id>``: running, done, or failed with the task's own reason."""
    response = client.request("GET", f"/_tasks/{task_id}", allow=(404,))
    if response.status == 404 or not isinstance(response.body, dict):
        return TaskState(True, failure=f"reindex task {task_id} is gone (node restarted?)")
    body: dict[str, Any] = response.body
    if not body.get("completed"):
        return TaskState(False)
    error = body.get("error")
    if error:
        reason = error.get("reason") if isinstance(error, dict) else error
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        return TaskState(True, failure=_one_line(f"reindex task failed: {kind}: {reason}"))
    result = body.get("response") or {}
    failures = result.get("failures") or []
    if failures:
        first = failures[0]
        cause = first.get("cause") or {}
        return TaskState(
            True,
            failure=_one_line(
                f"reindex copied {result.get('created', 0) + result.get('updated', 0)} of "
                f"{result.get('total', '?')} documents; {len(failures)} failed, first "
                f"(id {first.get('id')}, status {first.get('status')}): "
                f"{cause.get('type')}: {cause.get('reason')}"
            ),
        )
    return TaskState(True, created=int(result.get("created", 0)) + int(result.get("updated", 0)))


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
        vector = info.get("embedding")
        used = (info.get("model") or {}).get("id")
        if not isinstance(vector, list) or len(vector) != dimension or used != model_id:
            raise SetupError(
                f"document {hit.get('_id')} in {dest} has no {dimension}-d vector from model "
                f"{model_id} after the copy"
            )
