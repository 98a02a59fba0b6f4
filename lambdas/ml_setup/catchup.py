"""Writes during a re-embedding copy: kept, then caught up under a short write block.

Shared by ``Custom::SemanticIndex`` (semantic_index.py, one :func:`step` per
``is_complete`` poll) and ``python -m tools.migrate`` (one :func:`step` per
progress-bar tick). Standard library only, and no import from the rest of the
package, so tools/ can load it too; each side hands in its own HTTP :data:`Call`.

The rule. The alias stays on the old index for the whole copy and clients keep
reading and writing there. What they write is found again and copied by
catch-up rounds; only the last one runs under ``index.blocks.write``, and only
when it is short enough:

1. Before the copy, an ingest pipeline that sets :data:`STAMP_FIELD` to the
   round's generation becomes the old index's
   ``index.default_pipeline``; the old index is refreshed; then the
   ``_reindex`` task starts. Its scroll reads a point-in-time view (refreshed
   documents only), so every write it misses carries a stamp >= the first
   generation. Generations count up from the migration's start time in epoch
   seconds, so stamps an earlier migration left in the documents (they are
   copied with them) are all below this one's.
   The pipeline's ``set`` processor and the default pipeline are OpenSearch
   core (SetProcessor, IngestService, IndexSettings.DEFAULT_PIPELINE; class
   names only, core is not mirrored here). That a default pipeline and the
   semantic field's *system* pipeline both run is inferred: neural-search
   registers its processor as a system ingest processor (neural-search 3.7.0.0
   src/main/java/org/opensearch/neuralsearch/plugin/NeuralSearch.java:473),
   which core resolves for every index request in addition to the request's
   default/final pipelines.
2. When a round's task ends, the documents stamped with its generation are
   those written since it started. If re-embedding them at the copy's rate
   (``docs_per_second``) fits in ``block_seconds``, the last round starts:
   write block on the old index, refresh, ``_reindex`` of the stamped documents
   (a ``range`` query on the stamp), then deletions: ids in the new index that
   the old one no longer has (both listed with ``_source: false``, sorted by
   ``_id`` and paged with ``search_after``; under the block neither index
   changes) are deleted. The caller then verifies, moves the
   alias, lifts the block and calls :func:`finish`.
3. Otherwise another round runs *without* the block: the pipeline's
   generation goes up, the documents stamped with the previous one are
   copied, and so on, at most ``max_rounds`` times. Writers faster than the
   endpoint can re-embed never converge: the copy is refused with the figures
   (:class:`CatchUpError`), the alias stays where it was.

Costs and limits, said plainly: documents written during the migration keep
:data:`STAMP_FIELD` in their source (old and new index); a client that names
its own ``pipeline`` (or ``_none``) on a write bypasses the stamp (a request
pipeline replaces the default one), and so does a partial ``_update`` (core
runs ingest pipelines on index requests; an update of an existing document is
not one: inferred from UpdateHelper/TransportBulkAction, not read), so neither
may be used during a migration. Deletes need no stamp: the id comparison
under the block finds them. Sorting on ``_id`` relies on core's
``indices.id_field_data.enabled``, true by default (the setting's definition is
quoted in opensearch-project/OpenSearch issue #12185; a sort on ``_id`` works
with a deprecation warning, issue #13709); it loads ``_id`` fielddata onto the
heap, once per index per migration.

Abandoning a copy (deadline, failed verification, rollback) calls
:func:`cancel` before the new index is deleted, with ``wait_for_completion``:
a ``_reindex`` task that kept running would recreate the deleted index through
its bulk writes (core AutoCreateIndex, ``action.auto_create_index`` true by
default; inferred) and fill it with documents nobody deletes. Reindex checks
its task's cancellation between batches and then ends with ``canceled`` set in
its response (core AbstractAsyncBulkByScrollAction, BulkByScrollTask; class
names only). The permission is ``cluster:admin/tasks/cancel`` (core
CancelTasksAction.NAME), a cluster permission the security plugin cannot scope
to one task or index (access_mapping.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

STAMP_FIELD = "migration_generation"
# Ids per page of the deletion scan (index.max_result_window's default, 10000).
ID_PAGE = 10_000


class Call(Protocol):
    """One HTTP request: (status, parsed body); a status outside 2xx and ``allow`` raises."""

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]: ...


class CatchUpError(Exception):
    """The migration cannot finish: one line, the alias has not moved."""


@dataclass(frozen=True)
class Limits:
    docs_per_second: float  # the copy's throttle, also the block's re-embedding rate
    block_seconds: float  # longest write block the last round may need
    max_rounds: int = 5  # unblocked catch-up rounds before giving up


def pipeline_id(alias: str) -> str:
    return f"{alias}-migration-stamp"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def default_pipeline(call: Call, index: str) -> str | None:
    """The index's ``index.default_pipeline`` (None: unset, ``_none``, or no index)."""
    status, body = call("GET", f"/{index}", allow=(404,))
    if status == 404 or not isinstance(body, dict):
        return None
    settings = (body.get(index) or {}).get("settings") or {}
    value = (settings.get("index") or {}).get("default_pipeline")
    return None if value in (None, "_none") else str(value)


def stamp(call: Call, source: str, pipeline: str, generation: int) -> None:
    """Make the old index stamp every write with ``generation``, then refresh it.

    Refused if the index already has a default pipeline of someone else's: the
    stamp would replace it for the copy's duration (nothing here sets one).
    """
    current = default_pipeline(call, source)
    if current not in (None, pipeline):
        raise CatchUpError(
            f"index {source} has its own index.default_pipeline {current}; the migration "
            "would replace it while writes are stamped. Remove it, or migrate with writes paused"
        )
    call("PUT", f"/_ingest/pipeline/{pipeline}", {
        "description": f"re-embedding migration of {source}: marks writes made during the copy",
        "processors": [{"set": {"field": STAMP_FIELD, "value": generation}}],
    })  # fmt: skip
    call("PUT", f"/{source}/_settings", {"index": {"default_pipeline": pipeline}})
    call("POST", f"/{source}/_refresh")


def finish(call: Call, source: str, pipeline: str) -> None:
    """Stop stamping: the old index loses our default pipeline (only ours), the pipeline goes."""
    if default_pipeline(call, source) == pipeline:
        # "_none" is the setting's default (core IndexSettings.DEFAULT_PIPELINE; inferred).
        call("PUT", f"/{source}/_settings", {"index": {"default_pipeline": "_none"}},
             allow=(404,))  # fmt: skip
    call("DELETE", f"/_ingest/pipeline/{pipeline}", allow=(404,))


def set_write_block(call: Call, index: str, blocked: bool) -> None:
    call("PUT", f"/{index}/_settings", {"index": {"blocks": {"write": blocked}}},
         allow=(404,) if not blocked else ())  # fmt: skip


def since(generation: int) -> dict[str, Any]:
    return {"range": {STAMP_FIELD: {"gte": generation}}}


def start_task(
    call: Call, source: str, dest: str, docs_per_second: float, after: int | None
) -> str:
    """A throttled ``_reindex`` task: every document, or those stamped >= ``after``."""
    body: dict[str, Any] = {"source": {"index": source}, "dest": {"index": dest}}
    if after is not None:
        body["source"]["query"] = since(after)
    _, answer = call("POST", "/_reindex", body, {
        "wait_for_completion": "false",
        "requests_per_second": str(max(1, int(docs_per_second))),
    })  # fmt: skip
    task = answer.get("task") if isinstance(answer, dict) else None
    if not task:
        raise CatchUpError(f"_reindex returned no task: {answer!r}")
    return str(task)


@dataclass(frozen=True)
class TaskState:
    completed: bool
    done: int = 0  # documents created or updated so far
    failure: str | None = None
    gone: bool = False


def task_state(call: Call, task: str) -> TaskState:
    status, body = call("GET", f"/_tasks/{task}", allow=(404,))
    if status == 404 or not isinstance(body, dict):
        return TaskState(True, failure=f"reindex task {task} is gone (node restarted?)", gone=True)
    running = (body.get("task") or {}).get("status") or {}
    result = body.get("response") or {}
    counts = result or running
    done = int(counts.get("created", 0)) + int(counts.get("updated", 0))
    if not body.get("completed"):
        return TaskState(False, done)
    error = body.get("error")
    if error:
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        reason = error.get("reason") if isinstance(error, dict) else error
        return TaskState(True, done, _one_line(f"reindex task failed: {kind}: {reason}"))
    if result.get("canceled"):
        return TaskState(True, done, f"reindex task {task} was canceled: {result['canceled']}")
    failures = result.get("failures") or []
    if failures:
        first = failures[0]
        cause = first.get("cause") or {}
        return TaskState(True, done, _one_line(
            f"reindex copied {done} of {result.get('total', '?')} documents; "
            f"{len(failures)} failed, first (id {first.get('id')}, status "
            f"{first.get('status')}): {cause.get('type')}: {cause.get('reason')}"
        ))  # fmt: skip
    return TaskState(True, done)


def cancel(call: Call, task: str | None) -> None:
    """Cancel a copy's task and wait until it has stopped writing (a gone task is fine)."""
    if task:
        call("POST", f"/_tasks/{task}/_cancel", None, {"wait_for_completion": "true"},
             allow=(404,))  # fmt: skip


def count(call: Call, index: str, query: dict[str, Any] | None = None) -> int:
    call("POST", f"/{index}/_refresh")
    _, body = call("POST", f"/{index}/_count", {"query": query or {"match_all": {}}})
    return int((body or {}).get("count", 0))


def ids(call: Call, index: str) -> set[str]:
    """Every document id of ``index`` (no sources), paged by ``_id``."""
    found: set[str] = set()
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "size": ID_PAGE, "_source": False, "query": {"match_all": {}},
            "sort": [{"_id": "asc"}],
        }  # fmt: skip
        if after is not None:
            body["search_after"] = after
        _, answer = call("POST", f"/{index}/_search", body)
        hits = ((answer or {}).get("hits") or {}).get("hits") or []
        found.update(str(h["_id"]) for h in hits)
        if len(hits) < ID_PAGE:
            return found
        after = hits[-1].get("sort") or [hits[-1]["_id"]]


def delete_removed(call: Call, source: str, dest: str) -> int:
    """Delete from ``dest`` what ``source`` no longer has; returns how many.

    One ``DELETE _doc`` each (deletions during a copy are few, and a JSON
    client need not speak NDJSON); 404 is fine (a retried round).
    """
    doomed = sorted(ids(call, dest) - ids(call, source))
    for doc_id in doomed:
        call("DELETE", f"/{dest}/_doc/{quote(doc_id, safe='')}", allow=(404,))
    return len(doomed)


def block_seconds(documents: int, limits: Limits) -> float:
    return documents / limits.docs_per_second if limits.docs_per_second > 0 else math.inf


def begin(
    call: Call, source: str, dest: str, alias: str, limits: Limits, started: float
) -> dict[str, Any]:
    """Start stamping and the full copy; the returned state is what :func:`step` advances.

    ``started``: now, in epoch seconds (the first generation; see the module docstring).
    """
    first = int(started)
    stamp(call, source, pipeline_id(alias), first)
    task = start_task(call, source, dest, limits.docs_per_second, None)
    return {"phase": "copy", "task": task, "generation": first, "rounds": 0}


def step(
    call: Call,
    source: str,
    dest: str,
    alias: str,
    state: dict[str, Any],
    limits: Limits,
    *,
    log: Callable[[str], None] = lambda _: None,
    seen: TaskState | None = None,
) -> dict[str, Any]:
    """One look at the migration; returns the next state (``phase`` ``done``: block on, caught up).

    Phases: ``copy`` (the full copy), ``catchup`` (an unblocked round),
    ``final`` (the round under the write block), ``done``. A failed task
    raises :class:`CatchUpError` with the task's own reason. ``seen``: the
    current task's state when the caller has just read it (each ``GET _tasks``
    is a request; a progress bar reads it anyway).
    """
    phase, generation = state["phase"], int(state["generation"])
    if phase == "done":
        return state
    result = seen or task_state(call, str(state["task"]))
    if not result.completed:
        return state
    if result.failure:
        raise CatchUpError(result.failure)
    if phase == "final":
        removed = delete_removed(call, source, dest)
        log(f"caught up under the write block; {removed} deleted documents removed")
        return {**state, "phase": "done", "deleted": removed}
    pending = count(call, source, since(generation))
    needs = block_seconds(pending, limits)
    if needs <= limits.block_seconds:
        set_write_block(call, source, True)
        blocked = count(call, source, since(generation))  # refreshes: the block's view
        log(f"write block on {source}: {blocked} documents changed during the last round")
        if blocked == 0:
            removed = delete_removed(call, source, dest)
            return {**state, "phase": "done", "deleted": removed}
        task = start_task(call, source, dest, limits.docs_per_second, generation)
        return {**state, "phase": "final", "task": task}
    rounds = int(state.get("rounds", 0))
    if rounds >= limits.max_rounds:
        raise CatchUpError(
            f"writes outpace the copy: {pending} documents of {source} changed during the "
            f"last round, {math.ceil(needs)} s of write block at {limits.docs_per_second:g} "
            f"docs/s, more than the {limits.block_seconds:g} s allowed, after {rounds} "
            "catch-up rounds; pause bulk loads or raise the re-embedding rate, then retry"
        )
    stamp(call, source, pipeline_id(alias), generation + 1)
    log(f"catch-up round {rounds + 1}: {pending} documents changed, writes stay open")
    task = start_task(call, source, dest, limits.docs_per_second, generation)
    return {**state, "phase": "catchup", "task": task, "generation": generation + 1,
            "rounds": rounds + 1}  # fmt: skip
