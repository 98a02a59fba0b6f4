"""Custom::SemanticIndex: the k-NN index whose ``semantic`` field is bound to the model.

The index name is the configured base name plus a hash of everything that
cannot change on an existing index (the field, its vector dimension and space
type, shard count, raw field type, chunking). Changing one of those gives a
new name, so CloudFormation creates the new index before deleting the old one
(a replacement); everything else is updated in place and keeps the data:
* ``ModelId`` / ``SearchModelId``: the semantic field's updatable parameters,
  changed with a mapping update. Existing vectors are kept as they are; the
  dimension and space type are unchanged by construction (they are in the
  name), so they stay searchable.
* ``NumberOfReplicas``: a dynamic index setting.
* ``SemanticIngestBatchSize``: ``index.neural_search.semantic_ingest_batch_size``,
  documents per inference request of the semantic field at ingest; a dynamic
  index setting (neural-search 3.7.0.0 NeuralSearchSettings.java:63-70,
  ``Property.Dynamic``, 1-100, default 10). Absent: the index keeps what it has.
* ``DefaultSearchPipeline``: ``index.search.default_pipeline``, a dynamic core
  setting (OpenSearch core IndexSettings.DEFAULT_SEARCH_PIPELINE; neural-search
  3.7.0.0 changes it on a live index in its own tests,
  src/test/java/org/opensearch/neuralsearch/grpc/HybridQueryGrpcIT.java:477, 496),
  set at creation and updated in place. Absent: the setting is removed, so the
  config owns it. The template passes the pipeline resource's attribute, so the
  pipeline exists before the index names it and outlives it on delete.
* ``RetainOnDelete``: read at delete time only.

``index.knn`` is static (set at creation) and always true.

Clients should not have to follow those names: the configured base name is an
alias that always points at the current index. Create adds it; a replacement
moves it with one ``POST /_aliases`` (remove from the old index and add to the
new one in the same request, so there is no moment without it or with two
indexes behind it). Delete needs no alias call: deleting an index removes its
aliases, and by the time CloudFormation deletes a replaced index the alias has
already moved to the new one, so it is left alone. A retained index keeps its
alias until a new index takes it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from . import catchup, common, reembed
from .common import Ctx, Outcome, SetupError, best_effort
from .opensearch_client import OpenSearchClient, OpenSearchError
from .properties import FIELD_NAME, INDEX_NAME, PropertyError, Props
from .search_pipeline import PIPELINE_NAME

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = "Custom::SemanticIndex"
ID = r"[A-Za-z0-9_\-]{1,128}"


@dataclass(frozen=True)
class Spec:
    base_name: str
    field: str
    model_id: str
    search_model_id: str | None
    dimension: int
    space_type: str
    shards: int
    replicas: int
    raw_field_type: str
    # False (off), True (the server's default chunker) or the algorithm steps
    # as the semantic field's ``chunking`` parameter takes them.
    chunking: bool | list[dict[str, Any]]
    retain_on_delete: bool
    # What makes two vectors comparable (endpoint model id and revision,
    # prefixes, pooling, normalisation, dimension, space type): part of the
    # index name, so any change lands in a new index and is re-embedded.
    identity: dict[str, Any] | None = None
    docs_per_second: float = 0.0
    budget_seconds: float = 0.0
    environment: str = "NAME"
    ingest_batch_size: int | None = None
    default_search_pipeline: str | None = None
    # Longest write block the migration's last catch-up round may need (catchup.py).
    write_block_seconds: float = 60.0

    @classmethod
    def parse(cls, props: Props) -> Spec:
        return cls(
            base_name=props.string("IndexName", pattern=INDEX_NAME, what="a lowercase index name"),
            field=props.string("FieldName", pattern=FIELD_NAME, what="a field name"),
            model_id=props.string("ModelId", pattern=ID, what="a model id"),
            search_model_id=(
                props.string("SearchModelId", pattern=ID, what="a model id")
                if props.has("SearchModelId")
                else None
            ),
            dimension=props.integer("EmbeddingDimension", lo=1, hi=16000),
            space_type=props.choice("SpaceType", ("cosinesimil", "innerproduct", "l2")),
            shards=props.integer("NumberOfShards", lo=1, hi=1024),
            replicas=props.integer("NumberOfReplicas", lo=0, hi=15),
            raw_field_type=props.choice(
                "RawFieldType", ("text", "match_only_text"), default="text"
            ),
            chunking=_chunking(props),
            retain_on_delete=props.boolean("RetainOnDelete", default=False),
            identity=props.mapping("EmbeddingIdentity") if props.has("EmbeddingIdentity") else None,
            docs_per_second=float(
                props.integer("ReindexDocsPerSecond", lo=1, hi=100000, default=1)
            ),
            budget_seconds=float(
                props.integer("MigrationBudgetSeconds", lo=0, hi=3600, default=1800)
            ),
            environment=props.string(
                "EnvironmentName", default="NAME", pattern=r"[a-z][a-z0-9]{1,9}", what="an env name"
            ),
            ingest_batch_size=(
                props.integer("SemanticIngestBatchSize", lo=1, hi=100)
                if props.has("SemanticIngestBatchSize")
                else None
            ),
            default_search_pipeline=(
                props.string("DefaultSearchPipeline", pattern=PIPELINE_NAME, what="a pipeline name")
                if props.has("DefaultSearchPipeline")
                else None
            ),
            write_block_seconds=float(props.integer("WriteBlockSeconds", lo=1, hi=900, default=60)),
        )

    @property
    def limits(self) -> catchup.Limits:
        return catchup.Limits(self.docs_per_second, self.write_block_seconds)

    @property
    def index_name(self) -> str:
        fixed = {
            "field": self.field,
            "dimension": self.dimension,
            "space_type": self.space_type,
            "shards": self.shards,
            "raw_field_type": self.raw_field_type,
            "chunking": self.chunking,
        }
        if self.identity is not None:  # absent in stacks from before identities
            fixed["identity"] = self.identity
        return f"{self.base_name}-{common.config_hash(fixed, 8)}"

    def field_mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = {"type": "semantic", "model_id": self.model_id}
        if self.search_model_id:
            mapping["search_model_id"] = self.search_model_id
        if self.raw_field_type != "text":
            mapping["raw_field_type"] = self.raw_field_type
        if self.chunking:
            mapping["chunking"] = self.chunking
        return mapping


CHUNKING_STEP_KEYS = {"algorithm", "parameters"}


def _chunking(props: Props) -> bool | list[dict[str, Any]]:
    """``Chunking``: a boolean, or the steps as a JSON list (a string keeps numbers numbers).

    CloudFormation turns every leaf of a nested property into a string
    (``384`` -> ``"384"``), so the stack sends the steps JSON-encoded. Only the
    shape is checked here; the values were validated at synth (stacks/config.py)
    and the server validates them again when the index is created.
    """
    raw = props.raw("Chunking")
    if isinstance(raw, list):  # not JSON-encoded: its numbers arrived as strings
        raw = json.dumps(raw)
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            steps = json.loads(raw)
        except ValueError:
            steps = None
        if (
            isinstance(steps, list)
            and steps
            and all(
                isinstance(s, dict)
                and set(s) <= CHUNKING_STEP_KEYS
                and isinstance(s.get("algorithm"), str)
                and isinstance(s.get("parameters", {}), dict)
                for s in steps
            )
        ):
            return steps
        raise PropertyError(
            f"{RESOURCE_TYPE} property Chunking: {raw[:60]!r}; expected true, false or a JSON "
            'list of {"algorithm": ..., "parameters": {...}} steps'
        )
    return props.boolean("Chunking", default=False)


def _check_model(client: OpenSearchClient, model_id: str, spec: Spec) -> None:
    """Fail early, and legibly, if the model cannot back this field."""
    model = common.get_model(client, model_id)
    if model is None:
        raise SetupError(f"model {model_id} does not exist")
    config = model.get("model_config") or {}
    dimension = config.get("embedding_dimension")
    space_type = (config.get("additional_config") or {}).get("space_type")
    if dimension != spec.dimension or space_type != spec.space_type:
        raise SetupError(
            f"model {model_id} embeds with dimension {dimension} and space type {space_type}, "
            f"but the index is configured for {spec.dimension} and {spec.space_type}"
        )


def _get_index(client: OpenSearchClient, name: str) -> dict | None:
    response = client.request("GET", f"/{name}", allow=(404,))
    if response.status == 404 or not isinstance(response.body, dict):
        return None
    return response.body.get(name)


# index.neural_search.semantic_ingest_batch_size, as the nested settings body spells it.
BATCH_SETTING_GROUP, BATCH_SETTING_NAME = "neural_search", "semantic_ingest_batch_size"


def index_body(spec: Spec, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The creation body of the index ``spec`` names (also handed to tools.migrate in a plan)."""
    settings: dict[str, Any] = {
        "knn": True,
        "number_of_shards": spec.shards,
        "number_of_replicas": spec.replicas,
    }
    if spec.ingest_batch_size is not None:
        settings[BATCH_SETTING_GROUP] = {BATCH_SETTING_NAME: spec.ingest_batch_size}
    body: dict[str, Any] = {
        "settings": {"index": settings},
        "mappings": {"properties": {spec.field: spec.field_mapping()}},
    }
    if spec.default_search_pipeline:
        body["settings"]["index"]["search"] = {"default_pipeline": spec.default_search_pipeline}
    if meta:
        body["mappings"]["_meta"] = meta
    return body


def _create_index(
    client: OpenSearchClient, spec: Spec, name: str, meta: dict[str, Any] | None = None
) -> bool:
    """Create the index; False if it already existed (a retried create)."""
    body = index_body(spec, meta)
    try:
        client.request("PUT", f"/{name}", body=body)
    except OpenSearchError as exc:
        if exc.error_type == "resource_already_exists_exception":
            return False
        raise
    return True


def _converge(client: OpenSearchClient, spec: Spec, name: str, index: dict) -> None:
    """Bring an existing index to ``spec`` with in-place changes only."""
    properties = (index.get("mappings") or {}).get("properties") or {}
    current = properties.get(spec.field) or {}
    if current.get("type") != "semantic":
        raise SetupError(
            f"index {name} exists but its field {spec.field} is not a semantic field; "
            "delete the index or choose another IndexName"
        )
    wanted = spec.field_mapping()
    if any(current.get(k) != wanted.get(k) for k in ("model_id", "search_model_id")):
        client.request("PUT", f"/{name}/_mapping", body={"properties": {spec.field: wanted}})
    settings = (index.get("settings") or {}).get("index") or {}
    if str(settings.get("number_of_replicas")) != str(spec.replicas):
        client.request(
            "PUT",
            f"/{name}/_settings",
            body={"index": {"number_of_replicas": spec.replicas}},
        )
    _converge_batch_size(client, spec, name, settings)
    _converge_default_pipeline(client, spec, name, settings)


def _converge_batch_size(
    client: OpenSearchClient, spec: Spec, name: str, settings: dict[str, Any]
) -> None:
    """A dynamic setting: updated in place, never a new index (no re-embedding).

    GET returns the setting only if it was set (as a string); unset, neural-search
    uses its default of 10, which is what the comparison assumes.
    """
    if spec.ingest_batch_size is None:
        return
    group = settings.get(BATCH_SETTING_GROUP)
    current = group.get(BATCH_SETTING_NAME) if isinstance(group, dict) else None
    if str(current if current is not None else 10) != str(spec.ingest_batch_size):
        LOG.info("index %s: semantic_ingest_batch_size %s -> %s", name, current,
                 spec.ingest_batch_size)  # fmt: skip
        client.request(
            "PUT",
            f"/{name}/_settings",
            body={"index": {BATCH_SETTING_GROUP: {BATCH_SETTING_NAME: spec.ingest_batch_size}}},
        )


def _converge_default_pipeline(
    client: OpenSearchClient, spec: Spec, name: str, settings: dict[str, Any]
) -> None:
    """``index.search.default_pipeline`` to the configured pipeline, or removed (null).

    A null value resets a dynamic setting to its default (core
    MetadataUpdateSettingsService; "_none", no pipeline, for this one).
    """
    current = (settings.get("search") or {}).get("default_pipeline")
    if current in (None, "_none") and spec.default_search_pipeline is None:
        return
    if current == spec.default_search_pipeline:
        return
    LOG.info("index %s: default search pipeline %s -> %s", name, current,
             spec.default_search_pipeline)  # fmt: skip
    client.request(
        "PUT",
        f"/{name}/_settings",
        body={"index": {"search.default_pipeline": spec.default_search_pipeline}},
    )


def _alias_holders(client: OpenSearchClient, alias: str) -> list[str]:
    """The indexes of ours (``<alias>-*``) that ``alias`` points at now (none: 404).

    Never ``GET /_alias/<alias>``: with no index in the path the security
    plugin's default (legacy) evaluator checks ``indices:admin/aliases/get`` on
    every index of the domain, system indices included, and refuses the setup
    role, whose role covers only this app's patterns (security 3.7.0.0
    IndexResolverReplacer.java:131-148, 241-246; PrivilegesEvaluatorImpl.java:
    484-533; security issue #5871). ``<alias>-*`` is in the role's
    IndexPatterns; a wildcard that matches no index is granted and answered
    404 "alias [...] missing", like an alias on none of them.
    """
    response = client.request("GET", f"/{alias}-*/_alias/{alias}", allow=(404,))
    if response.status == 404 or not isinstance(response.body, dict):
        return []
    return sorted(
        index
        for index, entry in response.body.items()
        if isinstance(entry, dict) and alias in (entry.get("aliases") or {})
    )


def point_alias(client: OpenSearchClient, alias: str, index: str) -> None:
    """Make ``alias`` point at ``index`` only, atomically (one ``_aliases`` request)."""
    holders = _alias_holders(client, alias)
    if holders == [index]:
        return
    actions: list[dict[str, Any]] = [
        {"remove": {"index": old, "alias": alias}} for old in holders if old != index
    ]
    if index not in holders:
        actions.append({"add": {"index": index, "alias": alias}})
    LOG.info("alias %s: %s -> %s", alias, holders or "none", index)
    client.request("POST", "/_aliases", body={"actions": actions})


def _outcome(spec: Spec, name: str) -> Outcome:
    return Outcome(name, {"IndexName": name, "IndexAlias": spec.base_name})


def _ensure(client: OpenSearchClient, spec: Spec, ctx: Ctx) -> Outcome:
    name = spec.index_name
    _check_model(client, spec.model_id, spec)
    if spec.search_model_id:
        _check_model(client, spec.search_model_id, spec)
    index = _get_index(client, name)
    if index is None and _create_index(client, spec, name):
        try:
            point_alias(client, spec.base_name, name)
        except Exception:
            # A failed Create (or replacing Update) gets no Delete for this new
            # index from CloudFormation: remove it here. It has no documents yet.
            best_effort(lambda: client.request("DELETE", f"/{name}", allow=(404,)))
            raise
        return _outcome(spec, name)
    index = index or _get_index(client, name)
    if index is None:
        raise SetupError(f"index {name} could be neither created nor read")
    LOG.info("index %s exists; updating it in place", name)
    _converge(client, spec, name, index)
    point_alias(client, spec.base_name, name)
    return _outcome(spec, name)


def create(props: Props, ctx: Ctx) -> Outcome:
    spec = Spec.parse(props)
    client = ctx.setup_client()
    client.wait_until_available()
    return _ensure(client, spec, ctx)


MIGRATING = "copying"
COMPLETE = "complete"
# Who runs a copy (``_meta.migration.runner``): a deployment's copy may be
# restarted by the next deployment, a tools.migrate copy may not.
CLOUDFORMATION, TOOL = "cloudformation", "tools.migrate"
STATE_KEYS = ("phase", "task", "generation", "rounds")
# Key of the plan a refused copy leaves in the old index's _meta for tools.migrate.
PLAN = "pending_migration"


def _meta(index: dict | None) -> dict[str, Any]:
    meta = ((index or {}).get("mappings") or {}).get("_meta")
    return meta if isinstance(meta, dict) else {}


def _migration_state(index: dict | None) -> str | None:
    return (_meta(index).get("migration") or {}).get("state")


def _adoption_problem(spec: Spec, name: str, index: dict) -> str | None:
    """Why an existing index under the new name may not be adopted (None: adopt it).

    An index a copy left (here or by ``tools.migrate``) carries
    ``_meta.migration``: it is adopted only when the copy is ``complete`` and
    was made for this embedding identity (the name hashes the identity, so a
    mismatch means someone else's index under our name). An index without that
    marker is one this resource created without a copy (a retried Create).
    """
    migration = _meta(index).get("migration")
    if not isinstance(migration, dict):
        return None
    state = migration.get("state")
    if state != COMPLETE:
        return f"index {name} is marked {state!r}, not {COMPLETE!r}"
    if spec.identity is not None and migration.get("identity") != spec.identity:
        return f"index {name} was copied for another embedding identity"
    return None


def _record_plan(
    client: OpenSearchClient, spec: Spec, source: str, name: str, source_index: dict
) -> None:
    """Leave what tools.migrate needs in the old index's _meta (documents untouched).

    The refused deployment rolls back, so the plan is the only place the new
    index's name and body survive; tools.migrate reads it from the index the
    alias points at. ``_meta`` is replaced as a whole by a mapping update, so
    the existing keys are sent back with it.
    """
    plan = {
        "target": name,
        "body": index_body(spec, _copy_meta(spec, source, MIGRATING, TOOL)),
        "field": spec.field,
        "model_id": spec.model_id,
        "dimension": spec.dimension,
        "requests_per_second": int(spec.docs_per_second),
        "write_block_seconds": int(spec.write_block_seconds),
    }
    meta = {**_meta(source_index), PLAN: plan}
    client.request("PUT", f"/{source}/_mapping", body={"_meta": meta, "properties": {}})


def _copy_meta(
    spec: Spec, source: str, state: str, runner: str = CLOUDFORMATION, **progress: Any
) -> dict[str, Any]:
    migration: dict[str, Any] = {"state": state, "source": source, "runner": runner, **progress}
    if spec.identity is not None:
        migration["identity"] = spec.identity
    return {"migration": migration}


def _save_progress(
    client: OpenSearchClient, spec: Spec, source: str, name: str, state: dict[str, Any]
) -> None:
    """The copy's phase and current task live in the new index's _meta: polls read them back."""
    progress = {k: state[k] for k in STATE_KEYS if k in state}
    client.request("PUT", f"/{name}/_mapping", body={
        "_meta": _copy_meta(spec, source, MIGRATING, **progress), "properties": {}})  # fmt: skip


def _copy_source(client: OpenSearchClient, spec: Spec, physical_id: str, name: str) -> str | None:
    """The index whose documents the new one must receive: the replaced one, if it exists."""
    if physical_id == name or not re.fullmatch(
        re.escape(spec.base_name) + r"-[0-9a-f]{8}", physical_id
    ):
        return None
    return physical_id if _get_index(client, physical_id) is not None else None


def update(props: Props, old_props: Props, physical_id: str, ctx: Ctx) -> Outcome:
    """Same name: converged in place. New name (replacement or identity change): re-embed.

    The copy runs as a ``_reindex`` task polled from is_complete; the alias
    moves only after verification, and CloudFormation's cleanup then deletes
    (or, with RetainOnDelete, keeps) the old index. An index that already
    exists under the new name, complete and for this identity (what
    ``tools.migrate`` leaves), is adopted without another copy. A copy
    refused by the estimate records its plan in the old index's ``_meta``
    for ``tools.migrate``.
    """
    spec = Spec.parse(props)
    client = ctx.setup_client()
    client.wait_until_available()
    name = spec.index_name
    source = _copy_source(client, spec, physical_id, name)
    existing = _get_index(client, name)
    left = _meta(existing).get("migration") or {}
    task = left.get("task")
    ours = left.get("runner") == CLOUDFORMATION
    if existing is not None and _migration_state(existing) == MIGRATING and task and not ours:
        # tools.migrate's copy (older ones name no runner) is not ours to delete.
        raise SetupError(
            f"python -m tools.migrate is copying into {name} (task {task}); let it finish "
            f"(rerun it if it was stopped) for environment {spec.environment}, then deploy"
        )
    if existing is not None and _migration_state(existing) == MIGRATING:
        LOG.info("index %s is left from an unfinished copy; starting over", name)
        if source is not None:
            _abandon(client, spec, source, name, task)
        else:
            catchup.cancel(reembed.calls(client), task)
            client.request("DELETE", f"/{name}", allow=(404,))
        existing = None
    if existing is not None:
        problem = _adoption_problem(spec, name, existing)
        if problem:
            raise SetupError(f"{problem}; delete it or finish it with "
                             f"python -m tools.migrate --env {spec.environment}")  # fmt: skip
        LOG.info("adopting index %s (no copy)", name)
        return _ensure(client, spec, ctx)
    if source is None:
        return _ensure(client, spec, ctx)
    documents = reembed.count(client, source)
    if documents == 0:
        return _ensure(client, spec, ctx)
    estimate = reembed.Estimate(documents, spec.docs_per_second)
    if estimate.seconds > spec.budget_seconds:
        _check_model(client, spec.model_id, spec)
        best_effort(lambda: _record_plan(
            client, spec, source, name, _get_index(client, source) or {}))  # fmt: skip
        raise SetupError(
            f"re-embedding {documents} documents of {source} at {spec.docs_per_second:g} docs/s "
            f"takes about {reembed.minutes(estimate.seconds)}, more than the "
            f"{reembed.minutes(spec.budget_seconds)} a deployment may wait; documents unchanged. "
            f"Run python -m tools.migrate --env {spec.environment} (copies outside "
            "CloudFormation, resumable), then deploy again"
        )
    _check_model(client, spec.model_id, spec)
    _create_index(client, spec, name, _copy_meta(spec, source, MIGRATING))
    state: dict[str, Any] = {}
    try:
        # Writes stay open: they are stamped and caught up (catchup.py).
        state = catchup.begin(
            reembed.calls(client), source, name, spec.base_name, spec.limits, ctx.now()
        )
        _save_progress(client, spec, source, name, state)
    except Exception:
        _abandon(client, spec, source, name, state.get("task"))
        raise
    task = state["task"]
    LOG.info("re-embedding %s -> %s: task %s, ~%s", source, name, task, estimate.seconds)
    return Outcome(
        name,
        {"IndexName": name, "IndexAlias": spec.base_name},
        wait={"task": task, "source": source, "deadline": ctx.wait_deadline()},
    )


def _abandon(
    client: OpenSearchClient, spec: Spec, source: str, name: str, task: str | None
) -> None:
    """Undo a copy: its task is cancelled before the new index goes (a running task would
    recreate it), the old index is writable and stops stamping writes."""
    call = reembed.calls(client)
    best_effort(lambda: catchup.cancel(call, task))
    best_effort(lambda: client.request("DELETE", f"/{name}", allow=(404,)))
    best_effort(lambda: catchup.set_write_block(call, source, False))
    best_effort(lambda: catchup.finish(call, source, catchup.pipeline_id(spec.base_name)))


def poll(props: Props, physical_id: str, wait: dict[str, Any], ctx: Ctx) -> Outcome | None:
    """One look at the copy: still running (None), verified and switched, or failed."""
    spec = Spec.parse(props)
    client = ctx.setup_client()
    source, name = str(wait["source"]), physical_id
    call = reembed.calls(client)
    saved = _meta(_get_index(client, name)).get("migration") or {}
    state: dict[str, Any] = (
        {k: saved[k] for k in STATE_KEYS if k in saved}
        if "phase" in saved
        else {"phase": "copy", "task": str(wait["task"]), "generation": 1, "rounds": 0}
    )
    try:
        state = _advance(client, spec, source, name, state, float(wait["deadline"]), ctx)
        if state["phase"] != "done":
            return None
        reembed.verify(client, source, name, spec.field, spec.model_id, spec.dimension)
        client.request("PUT", f"/{name}/_mapping", body={
            "_meta": _copy_meta(spec, source, COMPLETE), "properties": {}})  # fmt: skip
        point_alias(client, spec.base_name, name)
    except catchup.CatchUpError as error:
        _abandon(client, spec, source, name, state.get("task"))
        raise SetupError(f"{error}; alias unchanged, {source} intact") from error
    except Exception:
        _abandon(client, spec, source, name, state.get("task"))
        raise
    best_effort(lambda: catchup.set_write_block(call, source, False))
    best_effort(lambda: catchup.finish(call, source, catchup.pipeline_id(spec.base_name)))
    return _outcome(spec, name)


def _advance(
    client: OpenSearchClient,
    spec: Spec,
    source: str,
    name: str,
    state: dict[str, Any],
    deadline: float,
    ctx: Ctx,
) -> dict[str, Any]:
    """One catch-up step (catchup.step), saved to _meta; past the deadline, the way out."""
    before = dict(state)
    moved = dict(catchup.step(
        reembed.calls(client), source, name, spec.base_name, before, spec.limits, log=LOG.info
    ))  # fmt: skip
    # In place: if anything below raises, the caller cancels the task just started.
    state.clear()
    state.update(moved)
    if moved["phase"] == "done":
        return moved
    if moved != before:
        _save_progress(client, spec, source, name, moved)
    if ctx.now() >= deadline:
        # Slower than estimated: the same way out as a refused estimate (the caller
        # abandons the copy, cancelling its task first).
        best_effort(lambda: _record_plan(
            client, spec, source, name, _get_index(client, source) or {}))  # fmt: skip
        raise SetupError(
            f"re-embedding {source} -> {name} did not finish in time; alias unchanged. "
            f"Run python -m tools.migrate --env {spec.environment}, then deploy again"
        )
    return moved


def delete(props: Props, physical_id: str, ctx: Ctx) -> None:
    spec = Spec.parse(props)
    if not re.fullmatch(re.escape(spec.base_name) + r"-[0-9a-f]{8}", physical_id):
        # Never let an odd physical id ("*", "_all", someone else's index) reach DELETE.
        LOG.warning(
            "physical id %r is not an index this resource names; nothing to delete", physical_id
        )
        return
    client = ctx.setup_client()
    client.wait_until_available()
    index = _get_index(client, physical_id)
    if spec.retain_on_delete and _migration_state(index) != MIGRATING:
        LOG.info("RetainOnDelete is true: keeping index %s and its documents", physical_id)
        return
    migration = _meta(index).get("migration") or {}
    if _migration_state(index) == MIGRATING:
        # A rollback's Delete of a half copy: stop its task first, or it recreates the index.
        best_effort(lambda: catchup.cancel(reembed.calls(client), migration.get("task")))
    # A half-filled copy (a failed migration's new id, sent by a rollback) is
    # deleted even with RetainOnDelete: its documents are all still in the source.
    # Removes the index's aliases with it; an alias that has moved to a newer
    # index is no longer on this one and stays.
    client.request("DELETE", f"/{physical_id}", allow=(404,))
    source = migration.get("source")
    if _migration_state(index) == MIGRATING and isinstance(source, str) and source != physical_id:
        # The copy's poll died before it could clean up: the old index takes writes
        # again, unstamped (what _abandon does when the poll itself fails).
        call = reembed.calls(client)
        best_effort(lambda: catchup.set_write_block(call, source, False))
        best_effort(lambda: catchup.finish(call, source, catchup.pipeline_id(spec.base_name)))
