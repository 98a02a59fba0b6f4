"""An in-process emulator of the Amazon OpenSearch Service REST APIs this project uses.

Why an emulator and not mocks: the custom-resource handlers (and later the
smoke and evaluation tools) are HTTP clients. A real threaded HTTP server on
127.0.0.1 lets any client - our urllib3 code, opensearch-py, curl - talk to it
unchanged, and lets the tests check the whole exchange: SigV4 signatures,
status codes, error bodies, retries.

A test double must enforce the rules of what it stands in for, so this one
does (each rule names its source: DESIGN.md, ml-commons, neural-search or the
security plugin):

* Service front end: every request must carry a valid SigV4 ``Authorization``
  for service ``es`` and this region (the signature is recomputed with the
  secret of the access key id); the domain access policy admits only the
  listed principals; creating or updating a connector whose
  ``credential.roleArn`` the caller may not ``iam:PassRole`` is refused.
* Fine-grained access control: the master principal has ``all_access``; any
  other identity has exactly the roles its ARN is mapped to as a backend role.
  ML APIs need ``cluster:admin/opensearch/ml/*`` (``ml_full_access``), index
  APIs need an index permission whose pattern matches, the security REST API
  needs the master user.
* ML Commons: connectors, model groups (unique names), remote models (connector
  must exist, ``model_config.additional_config.is_asymmetric`` must be a JSON
  boolean), deploy goes DEPLOYING then DEPLOYED or DEPLOY_FAILED over
  successive polls, a deployed or deploying model cannot be deleted ("undeploy
  model first"), a connector that a model uses cannot be deleted (409) nor
  updated while that model is loaded on a node (400), a model group with models
  cannot be deleted (409), missing objects are 404 (deletes: 200 ``not_found``
  unless model access control's GET runs first). Settings in
  :attr:`OpenSearchEmulator.ml_settings`: model access control (private groups
  refuse other callers' predict and model GET, 403) and auto-deploy (predict on
  an unloaded remote model deploys it). A remote text-embedding config needs
  dimension, framework and space type (checked only when ``function_name``
  precedes ``model_config``); updating a deploying model is 409; the endpoint is
  retried only on ``ThrottlingException``-tagged answers (:attr:`endpoint_answers`).
  :attr:`after_request` hooks run between a request's effect and its answer
  (live traffic at an exact point of a handler's sequence).
* Index APIs: ``index.knn`` and shard count are static; a ``semantic`` field
  needs an existing model with a ``model_config`` and ``index.knn: true``;
  ``model_id``/``search_model_id`` are updatable, ``raw_field_type``,
  ``chunking`` and ``semantic_info_field_name`` are not, and a new model must
  keep the field's vector dimension and space type. ``chunking`` is checked as
  neural-search's ChunkingConfig and chunkers do; a chunked field stores
  ``<field>_semantic_info.chunks[] {text, embedding}`` and a ``neural`` query on
  it answers documents scored by their best chunk (the semantic chunking section).
  ``index.search.default_pipeline`` is the pipeline of a search without
  ``?search_pipeline=``; a null in ``PUT _settings`` removes a setting (the default
  search pipeline section).
* Search/ingest for the smoke test: ``_predict``, indexing into the semantic
  field (embedded as ``passage``), ``neural`` queries (embedded as ``query``).
  Ingest and neural queries run ML Commons predict (and read the model) as the
  *caller*, as neural-search does: an identity without
  ``cluster:admin/opensearch/ml/predict`` and ``.../models/get`` is refused.
* Security-plugin action levels: ``_bulk`` is a cluster-level permission
  (``indices:data/write/bulk``, the plugin's ``isClusterPerm``) and then
  ``indices:data/write/bulk[s]`` plus ``indices:data/write/index`` on the index;
  creating an index with ``aliases`` also needs ``indices:admin/aliases``.
* Aliases: created by an index-creation body's ``aliases`` or by ``POST
  /_aliases`` (add, remove, remove_index; all actions of one request apply
  atomically or not at all), read by ``GET /_alias/{name}``, removed with their
  index. An alias name may not be an existing index's name and an index may not be
  created under an alias's name (core AliasValidator.validateAlias,
  MetadataCreateIndexService.validateIndexName); alias names follow
  validateIndexOrAliasName only (upper case and a leading '.' are allowed). Index APIs
  resolve an alias: permission on the alias name or on every index behind it
  suffices; a write through an alias with several indexes and no write index
  is refused (400, as OpenSearch does); ``DELETE /{alias}`` is refused (aliases
  are not deleted through the index API). Reads through an alias that spans
  several indexes are not emulated (400 that says so).

* Re-embedding copy: ``POST _reindex`` (a cluster permission, then search on
  the source and bulk/index on the destination as the caller),
  ``wait_for_completion=false`` answering ``{"task": "node:id"}``, ``GET
  _tasks/<id>`` with ``completed``, the running counts in ``task.status``
  (BulkByScrollTask.Status) and then ``response`` (bulk-by-scroll
  counts, per-document ``failures``) or ``error``; the destination's semantic
  field re-embeds every copied document; ``index.blocks.write`` refuses writes.
  Faults: documents the fake endpoint answers 5xx for, a task that dies.
  For writes during a migration (its own section): ingest pipelines with
  ``set``, ``index.default_pipeline``, ``DELETE _doc``, ``_id``-sorted paging,
  ``_reindex`` with ``source.query``, auto-creation of a deleted destination,
  and ``POST _tasks/<id>/_cancel``.
  Unlike the plugin rules, these OpenSearch core behaviours (reindex, tasks,
  write block) cite core class names only, not a 3.7.0 tag and line: the core
  repository is too large for this workplace to fetch. That ``_reindex`` writes
  run the destination's semantic-field processing is inferred (docs/ml-setup.md).

Every request, and every response the emulated OpenSearch produces, passes
through one hook (:attr:`OpenSearchEmulator.validator`), which by default
checks both against the official OpenSearch API specification
(``tests/support/opensearch_spec.py``). Responses of the emulated AWS front
end (access policy denials, injected throttling) are not OpenSearch's and are
not checked against its specification.

Extending it: a subclass adds APIs by overriding :meth:`OpenSearchEmulator.routes`
with :class:`Route` entries; a route with its own ``parse_body`` (NDJSON, say)
still passes the whole front end above. :meth:`OpenSearchEmulator.start` needs
no override.

Fault injection (:class:`Faults`): front-end 401/403 for the first N calls,
bursts of 429/503, dropped connections, failing or stalling deployments, a
domain that does not answer.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple, Protocol, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

__all__ = [
    "ApiError",
    "BodyParser",
    "Faults",
    "OpenSearchEmulator",
    "Outcome",
    "Principal",
    "Request",
    "Route",
    "hashing_embedder",
]

ML = "/_plugins/_ml"
SEC = "/_plugins/_security/api"
NODE_ID = "emulated-node-1"
ML_MODEL_INDEX = ".plugins-ml-model"
# System indices every real domain holds before we create anything: the security
# plugin's configuration index, and ML Commons' config index, which the
# cluster manager's sync-up job creates at start (ml-commons 3.7.0.0
# plugin/src/main/java/org/opensearch/ml/cluster/MLSyncUpCron.java:244-280,
# scheduled by MLCommonsClusterManagerEventListener.java:105; registered as a
# system index at MachineLearningPlugin.java:1549). No role of ours covers them.
SYSTEM_INDICES = (".opendistro_security", ".plugins-ml-config")


class Validator(Protocol):
    """What the emulator needs from the specification checks (``OpenSearchSpec``)."""

    def validate_request(self, method: str, path: str, query: Any, body: Any) -> Any: ...

    def validate_response(self, method: str, path: str, status: int, body: Any) -> Any: ...


@dataclass(frozen=True)
class Principal:
    """An IAM identity the emulator knows: its signing credentials and its ARN."""

    arn: str
    access_key: str
    secret_key: str
    session_token: str | None = None

    @property
    def credentials(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials(self.access_key, self.secret_key, self.session_token)


class ApiError(Exception):
    """An OpenSearch error response (standard or security-plugin shape)."""

    def __init__(self, status: int, error_type: str, reason: str, *, security: bool = False):
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.security = security

    def body(self) -> dict[str, Any]:
        if self.error_type == "AccessDenied":
            # The service front end's IAM denial is not an OpenSearch error: a bare
            # {"Message": "User: <arn> is not authorized to perform: es:ESHttp<Verb> ..."}
            # (AWS knowledge center "anonymous-not-authorized-opensearch",
            # https://repost.aws/knowledge-center/anonymous-not-authorized-opensearch;
            # developer guide ac.html, "Identity and Access Management in Amazon
            # OpenSearch Service"). The trailing "because no resource-based policy
            # allows ..." clause is IAM's standard wording (inferred, not in those pages).
            return {"Message": self.reason}
        if self.security:
            return {"status": self.error_type, "message": self.reason}
        cause = {"type": self.error_type, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def _sec_error(status: int, message: str) -> ApiError:
    names = {400: "BAD_REQUEST", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}
    return ApiError(status, names.get(status, "INTERNAL_SERVER_ERROR"), message, security=True)


# ----------------------------------------------------------------------------- faults


@dataclass
class FaultRule:
    """Answer matching requests with a canned front-end response (or a dropped connection)."""

    remaining: int
    status: int
    body: Any
    match: Callable[[str, str, str], bool]
    drop_connection: bool = False
    after_processing: bool = False
    """The request takes effect, then the answer is lost (a 5xx or a cut connection)."""


class Faults:
    """Fault injection hooks; each rule is consumed by the requests it answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.deploy_failures: list[str] = []
        self.stall_deploys = False
        self.down = False

    @staticmethod
    def _matcher(principal: str | None, path_prefix: str | None) -> Callable[[str, str, str], bool]:
        def match(arn: str, method: str, path: str) -> bool:
            return (principal is None or arn == principal) and (
                path_prefix is None or path.startswith(path_prefix)
            )

        return match

    def add(
        self,
        count: int,
        status: int,
        body: Any = None,
        *,
        principal: str | None = None,
        path_prefix: str | None = None,
        drop_connection: bool = False,
        after_processing: bool = False,
    ) -> None:
        with self._lock:
            self._rules.append(
                FaultRule(
                    count,
                    status,
                    body,
                    self._matcher(principal, path_prefix),
                    drop_connection,
                    after_processing,
                )
            )

    def deny(self, count: int, status: int = 403, *, principal: str | None = None) -> None:
        """What a new IAM policy or role mapping looks like before it has propagated."""
        message = (
            {"message": "The security token included in the request is invalid."}
            if status == 401
            else {
                "Message": f"User: {principal or 'caller'} is not authorized to perform: "
                "es:ESHttpGet because no resource-based policy allows the es:ESHttpGet action"
            }
        )
        self.add(count, status, message, principal=principal)

    def throttle(self, count: int, *, path_prefix: str | None = None) -> None:
        self.add(count, 429, {"message": "Too many requests"}, path_prefix=path_prefix)

    def unavailable(self, count: int, *, path_prefix: str | None = None) -> None:
        self.add(count, 503, {"message": "Service Unavailable"}, path_prefix=path_prefix)

    def drop_connections(self, count: int, *, path_prefix: str | None = None) -> None:
        self.add(count, 0, None, path_prefix=path_prefix, drop_connection=True)

    def fail_next_deploy(self, error: str) -> None:
        """The next deployment ends in DEPLOY_FAILED with ``error`` on its task."""
        with self._lock:
            self.deploy_failures.append(error)

    def take(self, arn: str, method: str, path: str) -> FaultRule | None:
        with self._lock:
            if self.down:
                return FaultRule(1, 503, {"message": "domain is processing"}, lambda *_: True)
            for rule in self._rules:
                if rule.remaining > 0 and rule.match(arn, method, path):
                    rule.remaining -= 1
                    return rule
            return None

    def take_deploy_failure(self) -> str | None:
        with self._lock:
            return self.deploy_failures.pop(0) if self.deploy_failures else None

    def pending(self) -> int:
        """Injected responses not yet consumed (a test can assert its faults were hit)."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)


# ----------------------------------------------------------------------------- embeddings

Embedder = Callable[[list[str], str, dict[str, Any]], list[list[float]]]


def hashing_embedder(
    texts: list[str], content_type: str, model: dict[str, Any]
) -> list[list[float]]:
    """Deterministic stand-in for the endpoint: bag of hashed words, with the E5 prefix.

    Like the real endpoint, it prepends the model's query or passage prefix, so
    the same text embeds differently as a query and as a passage, while texts
    sharing words stay close (a neural query finds the passage it paraphrases).
    """
    config = model.get("model_config") or {}
    extra = config.get("additional_config") or {}
    dimension = int(config.get("embedding_dimension") or 384)
    prefix = extra.get("query_prefix" if content_type == "query" else "passage_prefix") or ""
    vectors = []
    for text in texts:
        vector = [0.0] * dimension
        for word in re.findall(r"\w+", (prefix + text).lower()):
            digest = hashlib.sha256(word.encode()).digest()
            weight = 0.3 if word in ("query", "passage") else 1.0
            vector[int.from_bytes(digest[:4], "big") % dimension] += weight
            vector[int.from_bytes(digest[4:8], "big") % dimension] += weight * 0.5
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vectors.append([v / norm for v in vector])
    return vectors


# ----------------------------------------------------------------------------- security

ACTION_GROUPS: dict[str, list[str]] = {
    "cluster_monitor": ["cluster:monitor/*"],
    "cluster_all": ["cluster:*"],
    "indices_all": ["indices:*"],
    "manage": ["indices:monitor/*", "indices:admin/*"],
    "indices_monitor": ["indices:monitor/*"],
    "create_index": ["indices:admin/create", "indices:admin/mapping/put"],
    "crud": ["indices:data/read/*", "indices:data/write/*"],
    "read": ["indices:data/read/*"],
    "write": ["indices:data/write/*"],
    "search": ["indices:data/read/search*"],
}
RESERVED_ROLES: dict[str, dict[str, Any]] = {
    "all_access": {
        "reserved": True,
        "cluster_permissions": ["*"],
        "index_permissions": [{"index_patterns": ["*"], "allowed_actions": ["*"]}],
    },
    # security plugin config/roles.yml
    "ml_full_access": {
        "reserved": True,
        "cluster_permissions": ["cluster:admin/opensearch/ml/*", "cluster_monitor"],
        "index_permissions": [{"index_patterns": ["*"], "allowed_actions": ["indices_monitor"]}],
    },
}


# Index actions the security plugin evaluates as cluster permissions
# (PrivilegesEvaluator isClusterPerm); the per-index check follows separately.
CLUSTER_LEVEL_INDEX_ACTIONS = frozenset({
    "indices:data/write/bulk", "indices:data/read/mget", "indices:data/read/msearch",
})  # fmt: skip
NAME_KEYS = ("index", "indices", "alias", "aliases")
# What neural-search does under the caller's identity to embed a text.
INFERENCE_ACTIONS = (
    "cluster:admin/opensearch/ml/models/get",
    "cluster:admin/opensearch/ml/predict",
)


def _expand(actions: list[str]) -> list[str]:
    out: list[str] = []
    for action in actions:
        out.extend(ACTION_GROUPS.get(action, [action]))
    return out


def _allows(patterns: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, p) for p in _expand(patterns))


# ----------------------------------------------------------------------------- queries


def _field_values(source: dict[str, Any], name: str) -> list[Any]:
    base = name[: -len(".keyword")] if name.endswith(".keyword") else name
    value: Any = source
    for part in base.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, list) else [value]


def _tokens(value: Any) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", str(value).lower()))


def matches(query: dict[str, Any], source: dict[str, Any]) -> bool:
    """A small query DSL: term, terms, match, ids-free bool and match_all; others are 400."""
    if not isinstance(query, dict) or len(query) != 1:
        raise ApiError(400, "parsing_exception", f"malformed query {query!r}")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind in ("term", "match") and isinstance(spec, dict) and len(spec) == 1:
        ((name, value),) = spec.items()
        if isinstance(value, dict):
            value = value.get("value", value.get("query"))
        values = _field_values(source, name)
        if kind == "term":
            # keyword sub-fields and keyword fields compare exactly
            return any(v == value for v in values if v is not None)
        # match on a text field: any shared token (an OR query), like the real one
        return any(_tokens(v) & _tokens(value) for v in values if v is not None)
    if kind == "terms" and isinstance(spec, dict) and len(spec) == 1:
        ((name, wanted),) = spec.items()
        return any(v in wanted for v in _field_values(source, name))
    if kind == "range" and isinstance(spec, dict) and len(spec) == 1:
        # Numeric bounds only (the migration's generation stamp; core RangeQueryBuilder).
        ((name, bounds),) = spec.items()
        checks = {"gte": float.__ge__, "gt": float.__gt__, "lte": float.__le__, "lt": float.__lt__}
        values = [v for v in _field_values(source, name) if isinstance(v, int | float)]
        return any(
            all(checks[op](float(v), float(b)) for op, b in bounds.items() if op in checks)
            for v in values
        )
    if kind == "bool" and isinstance(spec, dict):
        must = spec.get("must", []) + spec.get("filter", [])
        must = must if isinstance(must, list) else [must]
        must_not = spec.get("must_not", [])
        must_not = must_not if isinstance(must_not, list) else [must_not]
        return all(matches(q, source) for q in must) and not any(
            matches(q, source) for q in must_not
        )
    raise ApiError(400, "parsing_exception", f"the emulator does not support query {kind!r}")


def _hits(index: str, docs: list[tuple[str, dict[str, Any]]], scores: list[float] | None = None):
    hits = [
        {"_index": index, "_id": doc_id, "_score": scores[i] if scores else 1.0, "_source": src}
        for i, (doc_id, src) in enumerate(docs)
    ]
    return {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": len(hits), "relation": "eq"},
            "max_score": max((h["_score"] for h in hits), default=None),
            "hits": hits,
        },
    }


# (method, path template, permission the security plugin checks, handler)
ROUTES: list[tuple[str, str, str, str]] = [
    ("GET", "/", "cluster:monitor/main", "_root"),
    ("GET", "/_cluster/health", "cluster:monitor/health", "_health"),
    ("POST", "ML/connectors/_create", "ml/connectors/create", "_connector_create"),
    ("POST", "ML/connectors/_search", "ml/connectors/search", "_connector_search"),
    ("GET", "ML/connectors/{cid}", "ml/connectors/get", "_connector_get"),
    ("PUT", "ML/connectors/{cid}", "ml/connectors/update", "_connector_update"),
    ("DELETE", "ML/connectors/{cid}", "ml/connectors/delete", "_connector_delete"),
    ("POST", "ML/model_groups/_register", "ml/model_groups/register", "_group_register"),
    ("POST", "ML/model_groups/_search", "ml/model_groups/search", "_group_search"),
    ("DELETE", "ML/model_groups/{gid}", "ml/model_groups/delete", "_group_delete"),
    ("POST", "ML/models/_register", "ml/register_model", "_model_register"),
    ("POST", "ML/models/_search", "ml/models/search", "_model_search"),
    ("GET", "ML/models/{mid}", "ml/models/get", "_model_get"),
    ("PUT", "ML/models/{mid}", "ml/models/update", "_model_update"),
    ("DELETE", "ML/models/{mid}", "ml/models/delete", "_model_delete"),
    ("POST", "ML/models/{mid}/_deploy", "ml/deploy_model", "_model_deploy"),
    ("POST", "ML/models/{mid}/_undeploy", "ml/undeploy_model", "_model_undeploy"),
    ("POST", "ML/models/{mid}/_predict", "ml/predict", "_model_predict"),
    ("GET", "ML/tasks/{tid}", "ml/tasks/get", "_task_get"),
    ("GET", "SEC/rolesmapping/{role}", "restapi:admin/rolesmapping", "_mapping_get"),
    ("PUT", "SEC/rolesmapping/{role}", "restapi:admin/rolesmapping", "_mapping_put"),
    ("PATCH", "SEC/rolesmapping/{role}", "restapi:admin/rolesmapping", "_mapping_patch"),
    ("DELETE", "SEC/rolesmapping/{role}", "restapi:admin/rolesmapping", "_mapping_delete"),
    ("GET", "SEC/roles/{role}", "restapi:admin/roles", "_role_get"),
    ("PUT", "SEC/roles/{role}", "restapi:admin/roles", "_role_put"),
    ("DELETE", "SEC/roles/{role}", "restapi:admin/roles", "_role_delete"),
    # Alias APIs check their indexes and aliases themselves (several of each per request).
    ("POST", "/_aliases", "", "_aliases_update"),
    ("GET", "/_alias/{name}", "", "_alias_get"),
    ("GET", "/{expression}/_alias/{name}", "", "_alias_get_in"),
    ("PUT", "/{index}", "indices:admin/create", "_index_create"),
    ("GET", "/{index}", "indices:admin/get", "_index_get"),
    ("DELETE", "/{index}", "indices:admin/delete", "_index_delete"),
    ("PUT", "/{index}/_mapping", "indices:admin/mapping/put", "_index_put_mapping"),
    ("PUT", "/{index}/_settings", "indices:admin/settings/update", "_index_put_settings"),
    ("POST", "/{index}/_refresh", "indices:admin/refresh", "_index_refresh"),
    ("PUT", "/{index}/_doc/{doc}", "indices:data/write/index", "_doc_put"),
    ("POST", "/{index}/_doc/{doc}", "indices:data/write/index", "_doc_put"),
    ("GET", "/{index}/_doc/{doc}", "indices:data/read/get", "_doc_get"),
    ("POST", "/{index}/_search", "indices:data/read/search", "_search"),
    ("GET", "/{index}/_search", "indices:data/read/search", "_search"),
    # Reindex is a cluster permission in the security plugin (isClusterPerm,
    # security 3.7.0.0 .../actionlevel/legacy/PrivilegesEvaluatorImpl.java:611-622);
    # source and destination are then checked as indices
    # (.../legacy/IndexResolverReplacer.java:855-857): see _reindex.
    ("POST", "/_reindex", "indices:data/write/reindex", "_reindex"),
    ("GET", "/_tasks/{task_id}", "cluster:monitor/task/get", "_tasks_get"),
    # RestCountAction runs a search: the permission is the search one.
    ("POST", "/{index}/_count", "indices:data/read/search", "_count"),
    ("GET", "/{index}/_count", "indices:data/read/search", "_count"),
    # Search pipelines: cluster permissions named by OpenSearch core's
    # PutSearchPipelineAction.NAME and DeleteSearchPipelineAction.NAME (read, core class
    # names only: core is not mirrored); the get name is the same family's, seen in
    # permission lists, its class not read.
    ("PUT", "/_search/pipeline/{pid}", "cluster:admin/search/pipeline/put", "_pipeline_put"),
    ("GET", "/_search/pipeline/{pid}", "cluster:admin/search/pipeline/get", "_pipeline_get"),
    ("DELETE", "/_search/pipeline/{pid}", "cluster:admin/search/pipeline/delete",
     "_pipeline_delete"),
]  # fmt: skip


# The default of plugins.ml_commons.trusted_connector_endpoints_regex: ml-commons 3.7.0.0
# common/src/main/java/org/opensearch/ml/common/settings/MLCommonsSettings.java:245-264
# (Java regexes; these have the same meaning in Python's re).
TRUSTED_CONNECTOR_ENDPOINTS = (
    r"^https://runtime\.sagemaker\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://api\.sagemaker\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://api\.openai\.com/.*$",
    r"^https://api\.cohere\.ai/.*$",
    r"^https://api\.deepseek\.com/.*$",
    r"^https://generativelanguage\.googleapis\.com/.*$",
    r"^https://bedrock-runtime\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://bedrock-agent-runtime\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://bedrock\..*[a-z0-9-]\.amazonaws\.com/.*$",
    r"^https://textract\..*[a-z0-9-]\.amazonaws\.com$",
    r"^https://comprehend\..*[a-z0-9-]\.amazonaws\.com$",
    r"^https://rekognition(-fips)?\..*[a-z0-9-]\.amazonaws\.com$",
)


# ----------------------------------------------------------------------------- state


BodyParser = Callable[[bytes, dict[str, str]], Any]
"""Decodes a request body: ``(raw bytes, lower-cased headers) -> body``; raises ApiError."""


class Route(NamedTuple):
    """One API the emulator serves; :meth:`OpenSearchEmulator.routes` lists them.

    A public type so that subclasses add APIs through the same front end as
    the built-in ones (SigV4, access policy, fault injection, fine-grained
    permission check, alias resolution, specification checks, call log)
    instead of re-implementing any of it.
    """

    method: str
    pattern: str
    """A regular expression the whole path must match; named groups are the handler's kwargs
    (a group named ``index`` is permission-checked and alias-resolved as an index)."""
    action: str
    """The permission the security plugin checks ("" when the handler checks its own)."""
    handler: Callable[..., Outcome]
    parse_body: BodyParser | None = None
    """None: the body is one JSON document. Otherwise the route's own decoder (NDJSON for
    ``_bulk``, say), which runs after authentication, as the service parses a body only for
    a caller it has admitted, and whose ApiError is the response."""


@dataclass
class Request:
    principal: str
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Outcome:
    status: int
    body: Any
    validate: bool = True


def _new_id() -> str:
    return uuid.uuid4().hex[:20]


@dataclass
class IndexState:
    settings: dict[str, Any]
    mappings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)


class OpenSearchEmulator:
    """The emulated domain: start it, point clients at :attr:`endpoint`, inspect its state."""

    def __init__(
        self,
        *,
        master: Principal,
        principals: list[Principal],
        region: str = "us-east-1",
        access_policy: list[str] | None = None,
        pass_role: dict[str, set[str]] | None = None,
        validator: Validator | str | None = "spec",
        deploy_polls: int = 2,
        embedder: Embedder = hashing_embedder,
    ) -> None:
        self.region = region
        self.master = master
        self.principals = {p.access_key: p for p in [master, *principals]}
        self.access_policy = (
            set(access_policy)
            if access_policy is not None
            else {p.arn for p in self.principals.values()}
        )
        self.pass_role = pass_role or {}
        if validator == "spec":
            from tests.support.opensearch_spec import OpenSearchSpec

            validator = OpenSearchSpec.load()
        self.validator: Validator | None = validator  # type: ignore[assignment]
        self.deploy_polls = deploy_polls
        self.embedder = embedder
        self.faults = Faults()
        self.lock = threading.RLock()
        self.connectors: dict[str, dict[str, Any]] = {}
        # plugins.ml_commons.trusted_connector_endpoints_regex (a dynamic cluster setting).
        self.trusted_connector_endpoints: list[str] = list(TRUSTED_CONNECTOR_ENDPOINTS)
        self.model_groups: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        # Model ids in the (one) node's model cache: from the start of a deploy
        # until undeploy or a failed deploy. What ML Commons consults, not the
        # model_state stored in the model index (see _connector_update).
        self.loaded: set[str] = set()
        self.auto_deploys: list[str] = []
        self.endpoint_answers: list[tuple[int, str | None]] = []
        self.endpoint_calls = 0
        # ML Commons cluster settings the emulator honours, at their 3.7.0.0 defaults
        # (ml-commons common/src/main/java/org/opensearch/ml/common/settings/
        # MLCommonsSettings.java:165-166 auto-deploy true, :213-219 access control false).
        self.ml_settings: dict[str, bool] = {
            "plugins.ml_commons.model_auto_deploy.enable": True,
            "plugins.ml_commons.model_access_control_enabled": False,
        }
        # Called with (method, path, status) after a request took effect and before
        # its answer is sent, outside the emulator's lock: a test issues "live
        # traffic" from here at an exact point of a handler's sequence of calls.
        self.after_request: list[Callable[[str, str, int], None]] = []
        self.indices: dict[str, IndexState] = {}
        # Names only: no API of ours reads them, but a request that resolves to
        # "all indices" must be allowed on them too (see _alias_get).
        self.system_indices: set[str] = set(SYSTEM_INDICES)
        # alias -> {index: options ({"is_write_index": bool} when given)}
        self.aliases: dict[str, dict[str, dict[str, Any]]] = {}
        self.roles: dict[str, dict[str, Any]] = {k: dict(v) for k, v in RESERVED_ROLES.items()}
        self.role_mappings: dict[str, dict[str, Any]] = {
            "all_access": {"backend_roles": [], "users": [], "hosts": [], "reserved": False}
        }
        self.log: list[tuple[str, str, str, int]] = []
        self.violations: list[BaseException] = []
        self._deploy_progress: dict[str, int] = {}
        # _reindex tasks ("node:id" -> state) and their fault hooks: documents
        # the fake endpoint answers 5xx for, and a reason that kills the task.
        self.reindex_tasks: dict[str, dict[str, Any]] = {}
        self.reindex_docs_per_poll = 50
        self.reindex_failing_docs: set[str] = set()
        self.reindex_task_dies: str | None = None
        # Search pipelines by id (the body as stored; see _pipeline_put).
        self.pipelines: dict[str, dict[str, Any]] = {}
        # Ingest pipelines by id (the migration section).
        self.ingest_pipelines: dict[str, dict[str, Any]] = {}
        self._task_ids = itertools.count(1000)
        # _bulk fault hooks and counters (see the _bulk section).
        self.bulk_embed_failures: list[int] = []
        self.bulk_poison_docs: set[str] = set()
        self.bulk_rejections = 0
        self.bulk_predict_calls = 0
        self.bulk_requests = 0
        self.bulk_sent_ids: list[str] = []
        self._seq = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        """Serve on an ephemeral 127.0.0.1 port; subclasses extend :meth:`routes`, not this."""
        emulator = self

        class Handler(_Handler):
            owner = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def calls(self, principal: str | None = None) -> list[tuple[str, str, str, int]]:
        with self.lock:
            return [c for c in self.log if principal is None or c[0] == principal]

    # -- the front end: faults, signature, access policy

    def authenticate(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> str:
        """Return the caller's ARN, or raise ApiError(403) like the service front end."""
        header = headers.get("authorization", "")
        found = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
            r"SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})",
            header,
        )
        if not found:
            raise ApiError(403, "MissingAuthenticationToken", "request is not SigV4-signed")
        access_key, _, region, service, signed, signature = found.groups()
        if service != "es" or region != self.region:
            raise ApiError(
                403,
                "InvalidSignatureException",
                f"credential scope {region}/{service} does not match {self.region}/es",
            )
        principal = self.principals.get(access_key)
        if principal is None:
            raise ApiError(403, "UnrecognizedClientException", "unknown access key id")
        if (
            principal.session_token
            and headers.get("x-amz-security-token") != principal.session_token
        ):
            raise ApiError(403, "InvalidSignatureException", "missing or wrong session token")
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names:
            raise ApiError(403, "InvalidSignatureException", "host and x-amz-date must be signed")
        request = AWSRequest(
            method=method,
            url=f"http://{headers.get('host', '')}{raw_path}",
            data=body,
            headers={n: headers.get(n, "") for n in names},
        )
        request.context["timestamp"] = headers.get("x-amz-date", "")
        auth = SigV4Auth(principal.credentials, "es", self.region)
        expected = auth.signature(
            auth.string_to_sign(request, auth.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, signature):
            raise ApiError(403, "InvalidSignatureException", "signature does not match")
        if principal.arn not in self.access_policy:
            verb = f"es:ESHttp{method.title()}"
            raise ApiError(
                403,
                "AccessDenied",
                f"User: {principal.arn} is not authorized to perform: {verb} because no "
                f"resource-based policy allows the {verb} action",
            )
        return principal.arn

    # -- fine-grained access control

    def roles_of(self, arn: str) -> set[str]:
        if arn == self.master.arn:
            return {"all_access"}
        with self.lock:
            return {
                role
                for role, mapping in self.role_mappings.items()
                if arn in mapping.get("backend_roles", []) or arn in mapping.get("users", [])
            }

    def authorize(self, arn: str, action: str, index: str | None = None) -> None:
        roles = self.roles_of(arn)
        if action.startswith("restapi:admin/") and arn != self.master.arn:
            raise _sec_error(403, "No permission to access REST API: " + action)
        for name in roles:
            role = self.roles.get(name) or {}
            if index is None:
                if _allows(role.get("cluster_permissions", []), action):
                    return
            else:
                for perm in role.get("index_permissions", []):
                    if any(
                        fnmatch.fnmatchcase(index, p) for p in perm.get("index_patterns", [])
                    ) and _allows(perm.get("allowed_actions", []), action):
                        return
        # security 3.7.0.0 SecurityFilter.java:402-413: "no permissions for <missing
        # privileges> and <User.toString()>" (User.java:240-241), status 403, with no
        # index named. The same answer whether the identity is mapped to a role that
        # lacks the action or not mapped at all (a fresh mapping not yet propagated).
        raise ApiError(
            403,
            "security_exception",
            f"no permissions for [{action}] and User [name={arn}, "
            f"backend_roles=[{arn}], requestedTenant=null]",
        )

    def authorize_index(self, arn: str, action: str, name: str) -> None:
        """Index permission on ``name``, or, for an alias, on every index behind it."""
        try:
            self.authorize(arn, action, name)
        except ApiError:
            with self.lock:
                behind = sorted(self.aliases.get(name, {}))
            if not behind:
                raise
            for index in behind:
                self.authorize(arn, action, index)

    def authorize_inference(self, arn: str, model_id: str | None = None) -> None:
        """neural-search embeds with the caller's identity: it reads the model, then predicts.

        Both ML Commons actions also apply model access control to the caller
        (see :meth:`check_model_access`).
        """
        for action in INFERENCE_ACTIONS:
            self.authorize(arn, action)
        if model_id is not None:
            self.check_model_access(arn, model_id)

    def check_model_access(self, arn: str, model_id: str) -> None:
        """ML Commons model access control: may ``arn`` use the model's group?

        ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/helper/
        ModelAccessControlHelper.java:204 (admin, i.e. all_access, or the setting
        off: allowed), :261-289 (no owner or public: allowed; private: the owner
        only; restricted: a shared backend role); the refusal is 403 "User doesn't
        have privilege to perform this operation on this model"
        (action/prediction/TransportPredictionTaskAction.java:183-200 for predict,
        action/models/GetModelTransportAction.java:132 for get).
        """
        if not self.ml_settings["plugins.ml_commons.model_access_control_enabled"]:
            return
        if "all_access" in self.roles_of(arn):
            return
        with self.lock:
            model = self.models.get(model_id)
            group = self.model_groups.get(model.get("model_group_id", "")) if model else None
        if group is None or group.get("owner") is None:
            return
        access = group.get("access", "public")
        allowed = (
            access == "public"
            or (access == "private" and group["owner"] == arn)
            or (access == "restricted" and arn in group.get("backend_roles", []))
        )
        if not allowed:
            raise ApiError(
                403,
                "status_exception",
                "User doesn't have privilege to perform this operation on this model",
            )

    def resolve(self, name: str, *, write: bool) -> str:
        """The concrete index an index API acts on when it is given ``name``."""
        targets = self.aliases.get(name)
        if not targets:
            return name
        if write:
            flagged = [i for i, options in targets.items() if options.get("is_write_index")]
            if len(flagged) == 1:
                return flagged[0]
            if (
                len(targets) == 1
                and next(iter(targets.values())).get("is_write_index") is not False
            ):
                return next(iter(targets))
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"no write index is defined for alias [{name}]. The write index may be explicitly "
                "disabled using is_write_index=false or the alias points to multiple indices "
                "without one being designated as a write index",
            )
        if len(targets) == 1:
            return next(iter(targets))
        raise ApiError(
            400,
            "illegal_argument_exception",
            f"the emulator reads through alias [{name}] only when it points at one index; it "
            f"points at {sorted(targets)}",
        )

    # -- dispatch

    def handle(self, request: Request) -> Outcome:
        route, params = self.route_for(request.method, request.path)
        if route is not None:
            action, fn = route.action, route.handler
            index = params.get("index")
            if action in CLUSTER_LEVEL_INDEX_ACTIONS:
                self.authorize(request.principal, action)
                if index is not None:
                    self.authorize_index(request.principal, action + "[s]", index)
                    if action == "indices:data/write/bulk":
                        self.authorize_index(request.principal, "indices:data/write/index", index)
            elif action and action.startswith("indices:") and index is not None:
                self.authorize_index(request.principal, action, index)
            elif action:
                self.authorize(request.principal, action)
            with self.lock:
                if index is not None and index in self.aliases:
                    if action == "indices:admin/delete":
                        raise ApiError(
                            400,
                            "illegal_argument_exception",
                            f"The provided expression [{index}] matches an alias, specify the "
                            "corresponding concrete indices instead.",
                        )
                    if action != "indices:admin/create":  # _index_create refuses it
                        params["index"] = self.resolve(
                            index, write=action.startswith("indices:data/write/")
                        )
                return fn(request, **params)
        raise ApiError(
            405, "illegal_argument_exception", f"no handler for {request.method} {request.path}"
        )

    def route_for(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        """The first of :meth:`routes` that serves ``method path``, and its URL-decoded params.

        The front end asks too (to pick the body decoder), so both always agree on the route.
        """
        for route in self.routes():
            if route.method != method:
                continue
            found = re.fullmatch(route.pattern, path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None, {}

    def routes(self) -> list[Route]:
        """The APIs served, first match wins: a subclass adds or overrides APIs by returning
        ``[*its_routes, *super().routes()]``."""
        routes = []
        for method, template, action, name in ROUTES:
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
            pattern = pattern.replace("ML/", ML + "/").replace("SEC/", SEC + "/")
            if action.startswith("ml/"):
                action = "cluster:admin/opensearch/" + action
            routes.append(Route(method, pattern, action, getattr(self, name)))
        return [*self._bulk_routes(), *self._migration_routes(), *routes]  # see their sections

    # -- cluster

    def _root(self, r: Request) -> Outcome:
        return Outcome(
            200,
            {
                "name": NODE_ID,
                "cluster_name": "111122223333:emulated",
                "cluster_uuid": "emulated-uuid",
                "version": {
                    "distribution": "opensearch",
                    "number": "3.7.0",
                    "build_type": "tar",
                    "build_hash": "unknown",
                    "build_date": "2026-01-01T00:00:00Z",
                    "build_snapshot": False,
                    "lucene_version": "10.3.0",
                    "minimum_wire_compatibility_version": "2.19.0",
                    "minimum_index_compatibility_version": "2.0.0",
                },
                "tagline": "The OpenSearch Project: https://opensearch.org/",
            },
        )

    def _health(self, r: Request) -> Outcome:
        return Outcome(
            200,
            {
                "cluster_name": "111122223333:emulated",
                "status": "green",
                "timed_out": False,
                "number_of_nodes": 1,
                "number_of_data_nodes": 1,
                "discovered_master": True,
                "discovered_cluster_manager": True,
                "active_primary_shards": len(self.indices),
                "active_shards": len(self.indices),
                "relocating_shards": 0,
                "initializing_shards": 0,
                "unassigned_shards": 0,
                "delayed_unassigned_shards": 0,
                "number_of_pending_tasks": 0,
                "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": 100.0,
            },
        )

    # -- ML Commons: connectors

    def _check_pass_role(self, principal: str, body: dict[str, Any]) -> None:
        role = (body.get("credential") or {}).get("roleArn")
        if role and role not in self.pass_role.get(principal, set()):
            raise ApiError(
                403,
                "security_exception",
                f"User: {principal} is not authorized to perform: iam:PassRole on resource: {role}",
            )

    def _write_response(self, index: str, doc_id: str, result: str) -> dict[str, Any]:
        return {
            "_index": index,
            "_id": doc_id,
            "_version": 1,
            "result": result,
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": next(self._seq),
            "_primary_term": 1,
        }

    def _check_trusted_urls(self, connector: dict[str, Any]) -> None:
        """Every action URL, ``${parameters.*}`` filled in, must match a trusted regex.

        ml-commons 3.7.0.0 common/src/main/java/org/opensearch/ml/common/connector/
        Connector.java:181-209 (validateConnectorURL, validateResolvedEndpoint:
        Matcher.matches, i.e. the whole URL), called at create
        (plugin/.../action/connector/TransportCreateConnectorAction.java:129) and on the
        updated connector (UpdateConnectorTransportAction.java:137).
        """
        params = connector.get("parameters") or {}
        for action in connector.get("actions") or []:
            url = re.sub(
                r"\$\{parameters\.([^}]+)\}",
                lambda m: str(params.get(m.group(1), m.group(0))),
                str(action.get("url", "")),
            )
            if not any(re.fullmatch(rx, url) for rx in self.trusted_connector_endpoints):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "Connector URL is not matching the trusted connector endpoint regex",
                )

    def _connector_create(self, r: Request) -> Outcome:
        body = r.body or {}
        self._check_pass_role(r.principal, body)
        self._check_trusted_urls(body)
        params = body.get("parameters") or {}
        if body.get("protocol") == "aws_sigv4" and not (
            params.get("region") and params.get("service_name")
        ):
            raise ApiError(400, "illegal_argument_exception", "Missing region or service_name")
        cid = _new_id()
        body = _with_parsed_client_config(body)  # issue 12 capacity section below
        # ML Commons keeps the version as a string (the GET response's schema says so).
        self.connectors[cid] = {
            **body,
            "version": str(body.get("version", "1")),
            "created_time": int(time.time() * 1000),
        }
        return Outcome(200, {"connector_id": cid})

    def _public_connector(self, cid: str) -> dict[str, Any]:
        # ML Commons never returns the credential.
        return {k: v for k, v in self.connectors[cid].items() if k != "credential"}

    def _connector_search(self, r: Request) -> Outcome:
        return self._ml_search(".plugins-ml-connector", self.connectors, r, self._public_connector)

    def _ml_search(
        self,
        index: str,
        store: dict[str, dict[str, Any]],
        r: Request,
        view: Callable[[str], dict[str, Any]] | None = None,
    ) -> Outcome:
        query = (r.body or {}).get("query", {"match_all": {}})
        size = int((r.body or {}).get("size", 10))
        found = [(k, view(k) if view else dict(v)) for k, v in store.items() if matches(query, v)]
        return Outcome(200, _hits(index, found[:size]))

    def _connector_get(self, r: Request, cid: str) -> Outcome:
        if cid not in self.connectors:
            raise ApiError(404, "status_exception", "Failed to find connector")
        return Outcome(200, self._public_connector(cid))

    def _models_of_connector(self, cid: str) -> list[str]:
        return [m for m, v in self.models.items() if v.get("connector_id") == cid]

    def _connector_update(self, r: Request, cid: str) -> Outcome:
        if cid not in self.connectors:
            raise ApiError(404, "status_exception", "Failed to find connector")
        # ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/action/connector/
        # UpdateConnectorTransportAction.java:177-218: the block is a search for models
        # of this connector among mlModelManager.getAllModelIds(), the models loaded
        # on the nodes (deploying ones included), not the stored model_state.
        deployed = [m for m in self._models_of_connector(cid) if m in self.loaded]
        if deployed:
            raise ApiError(
                400,
                "status_exception",
                f"{len(deployed)} models are still using this connector, please undeploy the "
                f"models first: [{', '.join(deployed)}]",  # Arrays.toString, as at :210-214
            )
        self._check_pass_role(r.principal, r.body or {})
        update = _with_parsed_client_config(dict(r.body or {}))  # replaced whole if given
        if "version" in update:
            update["version"] = str(update["version"])
        self._check_trusted_urls({**self.connectors[cid], **update})
        self.connectors[cid].update(update)
        return Outcome(200, self._write_response(".plugins-ml-connector", cid, "updated"))

    def _delete_missing(self, r: Request, index: str, oid: str, what: str) -> Outcome:
        """Deleting an id that is not there.

        With model access control off (or an all_access caller) ML Commons skips the
        access check's GET and deletes the document: 200 with result not_found
        (ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/helper/
        ConnectorAccessControlHelper.java:101-107 then action/connector/
        DeleteConnectorTransportAction.java:211-233; for groups
        helper/ModelAccessControlHelper.java:204 then
        action/model_group/DeleteModelGroupTransportAction.java:108-131, :186-227). With it on, the
        access check's GET answers 404 "Failed to find <what>"
        (ConnectorAccessControlHelper.java:189).
        """
        on = self.ml_settings["plugins.ml_commons.model_access_control_enabled"]
        if on and "all_access" not in self.roles_of(r.principal):
            raise ApiError(404, "status_exception", f"Failed to find {what}")
        return Outcome(200, self._write_response(index, oid, "not_found"))

    def _connector_delete(self, r: Request, cid: str) -> Outcome:
        if cid not in self.connectors:
            return self._delete_missing(r, ".plugins-ml-connector", cid, "connector")
        users = self._models_of_connector(cid)
        if users:
            raise ApiError(
                409,
                "status_exception",
                f"{len(users)} models are still using this connector, please delete or update "
                f"the models first: {users}",
            )
        del self.connectors[cid]
        return Outcome(200, self._write_response(".plugins-ml-connector", cid, "deleted"))

    # -- ML Commons: model groups

    def _register_group(
        self, name: str, description: str | None, access: dict[str, Any] | None = None
    ) -> str:
        for gid, group in self.model_groups.items():
            if group["name"] == name:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"The name you provided is already being used by a model group with ID: {gid}.",
                )
        gid = _new_id()
        self.model_groups[gid] = {
            "name": name,
            "description": description or "",
            "latest_version": 0,
            "access": "public",
            **(access or {}),
        }
        return gid

    def _group_access(self, arn: str, body: dict[str, Any]) -> dict[str, Any]:
        """Access fields of a new group, by ML Commons' rules.

        ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/model/
        MLModelGroupManager.java:101-125 (access control on: validated mode, owner;
        off: public, no owner), :178-190 (no mode given: restricted if backend roles
        are, else private), :191-214 (the mode's rules; a non-admin may name only
        backend roles it has itself, so "restricted to another role" is impossible
        for our setup role), :321-328 (off: any access parameter is a 400).
        """
        mode = body.get("access_mode")
        roles = list(body.get("backend_roles") or [])
        add_all = body.get("add_all_backend_roles")
        if not self.ml_settings["plugins.ml_commons.model_access_control_enabled"]:
            if mode is not None or add_all is not None or roles:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "You cannot specify model access control parameters because the Security "
                    "plugin or model access control is disabled on your cluster.",
                )
            return {"access": "public"}
        admin = "all_access" in self.roles_of(arn)
        own_roles = [arn]  # IAM identities carry their ARN as their backend role
        both = "You cannot specify backend roles and add all backend roles at the same time."
        refusal = None
        if mode is None:
            refusal = both if roles and add_all is True else None
            mode = "restricted" if (add_all is True or roles) else "private"
        if mode in ("public", "private") and (roles or add_all is True):
            refusal = (
                "You can specify backend roles only for a model group with the restricted "
                "access mode."
            )
        elif mode == "restricted":
            if admin and add_all is True:
                refusal = "Admin users cannot add all backend roles to a model group."
            elif not roles and add_all is not True:
                refusal = (
                    "You must specify one or more backend roles or add all backend roles to "
                    "register a restricted model group."
                )
            elif roles and add_all is True:
                refusal = both
            elif not admin and add_all is not True and not set(roles) <= set(own_roles):
                refusal = "You don't have the backend roles specified."
            if add_all is True:
                roles = own_roles
        if refusal:
            raise ApiError(400, "illegal_argument_exception", refusal)
        if mode not in ("public", "private", "restricted"):
            raise ApiError(400, "illegal_argument_exception", f"invalid access mode {mode}")
        return {"access": mode, "owner": arn, "backend_roles": roles}

    def _group_register(self, r: Request) -> Outcome:
        body = r.body or {}
        access = self._group_access(r.principal, body)
        gid = self._register_group(str(body["name"]), body.get("description"), access)
        return Outcome(200, {"model_group_id": gid, "status": "CREATED"})

    def _group_search(self, r: Request) -> Outcome:
        return self._ml_search(".plugins-ml-model-group", self.model_groups, r)

    def _group_delete(self, r: Request, gid: str) -> Outcome:
        if gid not in self.model_groups:
            return self._delete_missing(r, ".plugins-ml-model-group", gid, "model group")
        if any(m.get("model_group_id") == gid for m in self.models.values()):
            raise ApiError(
                409,
                "status_exception",
                "Cannot delete the model group when it has associated model versions",
            )
        del self.model_groups[gid]
        return Outcome(200, self._write_response(".plugins-ml-model-group", gid, "deleted"))

    # -- ML Commons: models

    def _validate_model_config(self, config: Any, *, remote: bool = True) -> None:
        if not isinstance(config, dict):
            return
        for key in ("embedding_dimension",):
            if key in config and (
                isinstance(config[key], bool) or not isinstance(config[key], int)
            ):
                raise ApiError(400, "illegal_argument_exception", f"{key} must be an integer")
        extra = config.get("additional_config") or {}
        if "is_asymmetric" in extra and not isinstance(extra["is_asymmetric"], bool):
            # Stricter than the service, which silently ignores a non-boolean
            # flag (neural-search AsymmetricModelDetector): DESIGN.md requires
            # a JSON boolean, and CloudFormation turns booleans into strings.
            raise ApiError(
                400,
                "illegal_argument_exception",
                "additional_config.is_asymmetric must be a boolean, got "
                f"{type(extra['is_asymmetric']).__name__}",
            )
        # ml-commons 3.7.0.0 common/src/main/java/org/opensearch/ml/common/model/
        # RemoteModelConfig.java:169-180, in this order, for model_type text_embedding.
        if remote and str(config.get("model_type", "")).lower() == "text_embedding":
            for key, what in (("embedding_dimension", "Embedding dimension"),
                              ("framework_type", "Framework type")):  # fmt: skip
                if config.get(key) is None:
                    raise ApiError(
                        400,
                        "illegal_argument_exception",
                        f"{what} must be provided for remote text embedding model",
                    )
            if "space_type" not in extra:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "Space type must be provided in additional_config for remote text "
                    "embedding model",
                )

    def _model_register(self, r: Request) -> Outcome:
        body = r.body or {}
        if body.get("function_name") != "remote":
            raise ApiError(
                400, "illegal_argument_exception", "the emulator registers remote models only"
            )
        cid = body.get("connector_id")
        if cid not in self.connectors:
            raise ApiError(404, "status_exception", f"Failed to find connector {cid}")
        # ml-commons 3.7.0.0 common/src/main/java/org/opensearch/ml/common/transport/
        # register/MLRegisterModelInput.java:585-634 reads the fields in body order and
        # parses model_config as a RemoteModelConfig (with its text-embedding checks)
        # only if function_name came first; otherwise as a BaseModelConfig, unchecked.
        keys = list(body)
        remote_first = "model_config" not in keys or keys.index("function_name") < keys.index(
            "model_config"
        )
        self._validate_model_config(body.get("model_config"), remote=remote_first)
        gid = body.get("model_group_id")
        if gid is None:
            access = self._group_access(r.principal, {})
            gid = self._register_group(str(body["name"]), body.get("description"), access)
        elif gid not in self.model_groups:
            raise ApiError(404, "status_exception", "Failed to find model group")
        self.model_groups[gid]["latest_version"] += 1
        mid, tid = _new_id(), _new_id()
        now = int(time.time() * 1000)
        self.models[mid] = {
            "name": body["name"],
            "algorithm": "REMOTE",
            "function_name": "remote",
            "model_group_id": gid,
            "model_version": str(self.model_groups[gid]["latest_version"]),
            "description": body.get("description", ""),
            "connector_id": cid,
            "model_config": body.get("model_config"),
            "model_state": "REGISTERED",
            "created_time": now,
            "last_updated_time": now,
            "is_hidden": False,
        }
        self.tasks[tid] = {"model_id": mid, "task_type": "REGISTER_MODEL", "state": "COMPLETED",
                           "function_name": "REMOTE", "is_async": False}  # fmt: skip
        return Outcome(200, {"task_id": tid, "status": "CREATED", "model_id": mid})

    def _model_search(self, r: Request) -> Outcome:
        return self._ml_search(ML_MODEL_INDEX, self.models, r)

    def _advance(self, mid: str) -> None:
        """Each observation of a deploying model moves it one poll closer to its end state."""
        model = self.models[mid]
        if model["model_state"] != "DEPLOYING" or self.faults.stall_deploys:
            return
        seen = self._deploy_progress.get(mid, 0) + 1
        self._deploy_progress[mid] = seen
        if seen < self.deploy_polls:
            return
        task = self.tasks[model["_deploy_task"]]
        error = model.pop("_deploy_error", None)
        if error:
            model["model_state"] = "DEPLOY_FAILED"
            self.loaded.discard(mid)
            task.update(state="FAILED", error=json.dumps({NODE_ID: error}))
        else:
            model["model_state"] = "DEPLOYED"
            task.update(state="COMPLETED")

    def _model_view(self, mid: str) -> dict[str, Any]:
        return {k: v for k, v in self.models[mid].items() if not k.startswith("_")}

    def _model_get(self, r: Request, mid: str) -> Outcome:
        if mid not in self.models:
            raise ApiError(404, "status_exception", "Failed to find model")
        self.check_model_access(r.principal, mid)
        self._advance(mid)
        return Outcome(200, self._model_view(mid))

    def _model_update(self, r: Request, mid: str) -> Outcome:
        if mid not in self.models:
            raise ApiError(404, "status_exception", "Failed to find model")
        if self.models[mid]["model_state"] in ("DEPLOYING", "LOADING"):
            # ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/action/models/
            # UpdateModelTransportAction.java:221-227, :736-738.
            raise ApiError(
                409,
                "status_exception",
                "Model is deploying. Please wait for the model to complete deployment. "
                f"model ID {mid}",
            )
        body = dict(r.body or {})
        if "model_config" in body:
            self._validate_model_config(body["model_config"])
        self.models[mid].update(body)
        return Outcome(200, self._write_response(ML_MODEL_INDEX, mid, "updated"))

    def _model_deploy(self, r: Request, mid: str) -> Outcome:
        if mid not in self.models:
            raise ApiError(404, "status_exception", "Failed to find model")
        model = self.models[mid]
        if model["connector_id"] not in self.connectors:
            raise ApiError(400, "status_exception", "Failed to find connector")
        tid = _new_id()
        self.tasks[tid] = {"model_id": mid, "task_type": "DEPLOY_MODEL", "state": "RUNNING",
                           "function_name": "REMOTE", "is_async": True,
                           "worker_node": [NODE_ID]}  # fmt: skip
        self.loaded.add(mid)
        if model["model_state"] != "DEPLOYED":
            model["model_state"] = "DEPLOYING"
            model["_deploy_task"] = tid
            self._deploy_progress[mid] = 0
            error = self.faults.take_deploy_failure()
            if error:
                model["_deploy_error"] = error
        else:
            self.tasks[tid]["state"] = "COMPLETED"
        # A remote model's deploy answers once the nodes have it: COMPLETED (ml-commons
        # 3.7.0.0 plugin/src/main/java/org/opensearch/ml/action/deploy/
        # TransportDeployModelAction.java:297-299, :404-410). The emulator still moves
        # the stored model_state over polls (the model index is updated afterwards),
        # which is where injected deploy failures and stalls show.
        return Outcome(200, {"task_id": tid, "task_type": "DEPLOY_MODEL", "status": "COMPLETED"})

    def _model_undeploy(self, r: Request, mid: str) -> Outcome:
        if mid not in self.models:
            raise ApiError(404, "status_exception", "Failed to find model")
        before = self.models[mid]["model_state"]
        self.loaded.discard(mid)
        self.models[mid]["model_state"] = "UNDEPLOYED"
        self.models[mid].pop("_deploy_error", None)
        status = "undeployed" if before in ("DEPLOYED", "DEPLOYING") else "not_found"
        return Outcome(200, {NODE_ID: {"stats": {mid: status}}})

    def _model_delete(self, r: Request, mid: str) -> Outcome:
        if mid not in self.models:
            raise ApiError(404, "status_exception", "Failed to find model")
        if self.models[mid]["model_state"] in ("DEPLOYED", "DEPLOYING", "PARTIALLY_DEPLOYED"):
            raise ApiError(
                400,
                "status_exception",
                "Model cannot be deleted in deploying or deployed state. Try undeploy model "
                "first then delete",
            )
        del self.models[mid]
        return Outcome(200, self._write_response(ML_MODEL_INDEX, mid, "deleted"))

    def _task_get(self, r: Request, tid: str) -> Outcome:
        if tid not in self.tasks:
            raise ApiError(404, "status_exception", "Failed to find task")
        task = self.tasks[tid]
        if task.get("model_id") in self.models:
            self._advance(task["model_id"])
        return Outcome(200, {"task_id": tid, **task})

    def embed(self, mid: str, texts: list[str], content_type: str) -> list[list[float]]:
        """What a deployed remote model returns for ``texts`` (the connector's predict)."""
        model = self.models.get(mid)
        if model is None:
            raise ApiError(404, "status_exception", "Failed to find model")
        if model["model_state"] != "DEPLOYED":
            self._auto_deploy(mid)
        if content_type.lower() not in ("query", "passage"):
            raise ApiError(
                400, "illegal_argument_exception", f"invalid content_type {content_type}"
            )
        self._call_endpoint(model)
        return self.embedder(texts, content_type.lower(), model)

    def _call_endpoint(self, model: dict[str, Any]) -> None:
        """The connector's call to the endpoint, with ML Commons' retry rule.

        ml-commons 3.7.0.0 ml-algorithms/src/main/java/org/opensearch/ml/engine/
        algorithms/remote/RemoteConnectorExecutor.java:419-430 retries only a
        RemoteConnectorThrottlingException, at most client_config.max_retry_times
        (default 0, common/.../connector/ConnectorClientConfig.java:46; -1 unbounded);
        MLSdkAsyncHttpResponseHandler.java:115-136 raises that only when the answer's
        x-amzn-ErrorType header starts with "ThrottlingException" (:43, :125); any
        other non-2xx is "Error from remote service: <body>" with its status
        (:180-189), not retried. ``endpoint_answers`` scripts the endpoint: each entry
        (status, x-amzn-ErrorType or None) is one call; when empty, calls succeed.
        """
        connector = self.connectors.get(model.get("connector_id", "")) or {}
        retries = int((connector.get("client_config") or {}).get("max_retry_times", 0))
        attempt = 0
        while self.endpoint_answers:
            status, error_type = self.endpoint_answers.pop(0)
            self.endpoint_calls += 1
            if 200 <= status < 300:
                return
            throttled = (error_type or "").startswith("ThrottlingException")
            if throttled and (retries == -1 or attempt < retries):
                attempt += 1
                continue
            reason = (
                "The request was denied due to remote server throttling. To change the retry "
                "policy and behavior, please update the connector client_config."
                if throttled
                else json.dumps({"message": f"the endpoint answered {status}"})
            )
            raise ApiError(status, "status_exception", "Error from remote service: " + reason)
        self.endpoint_calls += 1

    def _auto_deploy(self, mid: str) -> None:
        """Predict on a remote model no node has loaded: deploy it first, or refuse.

        ml-commons 3.7.0.0 plugin/src/main/java/org/opensearch/ml/task/
        MLPredictTaskRunner.java:247-288: with plugins.ml_commons.model_auto_deploy.enable
        on (the default) and the model's deploy_setting.is_auto_deploy_enabled not false
        (:405-410), a remote model (common/.../FunctionName.java:61-63) is deployed and the
        prediction dispatched; otherwise :297-298 "Model not ready yet. Please deploy the
        model first." The emulator completes that deployment at once (a remote model's
        deploy loads no weights).
        """
        model = self.models[mid]
        setting = (model.get("deploy_setting") or {}).get("is_auto_deploy_enabled")
        if not self.ml_settings["plugins.ml_commons.model_auto_deploy.enable"] or setting is False:
            raise ApiError(
                400,
                "illegal_argument_exception",
                "Model not ready yet. Please deploy the model first.",
            )
        if model["connector_id"] not in self.connectors:
            raise ApiError(400, "status_exception", "Failed to find connector")
        self.loaded.add(mid)
        model["model_state"] = "DEPLOYED"
        model.pop("_deploy_error", None)
        self.auto_deploys.append(mid)

    def _model_predict(self, r: Request, mid: str) -> Outcome:
        params = (r.body or {}).get("parameters") or {}
        texts = params.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "illegal_argument_exception", "parameters.texts must be a list")
        if mid in self.models:
            self.check_model_access(r.principal, mid)
        vectors = self.embed(mid, texts, str(params.get("content_type", "")))
        output = {"name": "response", "dataAsMap": {"response": vectors}}
        return Outcome(200, {"inference_results": [{"output": [output], "status_code": 200}]})

    # -- security plugin

    def _mapping_get(self, r: Request, role: str) -> Outcome:
        if role not in self.role_mappings:
            raise _sec_error(404, f"'{role}' not found.")
        mapping = self.role_mappings[role]
        full = {"hosts": [], "users": [], "reserved": False, "hidden": False,
                "backend_roles": [], "and_backend_roles": [], **mapping}  # fmt: skip
        return Outcome(200, {role: json.loads(json.dumps(full))})

    def _check_mapping(self, role: str, mapping: Any) -> dict[str, Any]:
        if role not in self.roles:
            raise _sec_error(404, f"role '{role}' not found.")
        if not isinstance(mapping, dict):
            raise _sec_error(400, "Wrong request body")
        for key, value in mapping.items():
            if key not in ("backend_roles", "users", "hosts", "and_backend_roles", "description"):
                raise _sec_error(400, f"Invalid configuration: unknown key {key}")
            if key != "description" and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise _sec_error(400, f"{key} must be an array of strings")
        return mapping

    def _mapping_put(self, r: Request, role: str) -> Outcome:
        mapping = self._check_mapping(role, r.body)
        existed = role in self.role_mappings
        self.role_mappings[role] = json.loads(json.dumps(mapping))
        if existed:
            return Outcome(200, {"status": "OK", "message": f"'{role}' updated."})
        return Outcome(201, {"status": "CREATED", "message": f"'{role}' created."})

    def _mapping_patch(self, r: Request, role: str) -> Outcome:
        if role not in self.role_mappings:
            raise _sec_error(404, f"'{role}' not found.")
        ops = r.body
        if not isinstance(ops, list) or not ops:
            raise _sec_error(400, "Wrong request body")
        # security 3.7.0.0 AbstractApiAction.java:204-208: the patch is applied to the
        # entity serialized with omit_defaults (dlic/rest/support/Utils.java:140-148 ->
        # SecurityDynamicConfiguration.java:295-297 -> DefaultObjectMapper.java:205-209),
        # whose mapper includes only NON_DEFAULT values (DefaultObjectMapper.java:104-109):
        # empty lists, false flags and null description are absent. So `add
        # /backend_roles/-` on a mapping whose backend_roles is [] (or that lists only
        # users) fails: its parent does not exist (security issue #4393).
        document = {
            k: v
            for k, v in json.loads(json.dumps(self.role_mappings[role])).items()
            if v not in ([], False, None, "")
        }
        for op in ops:
            if op.get("op") not in ("add", "replace", "remove"):
                raise _sec_error(
                    400,
                    f"Unsupported patch operation: {op.get('op')}. "
                    "Supported are: add,replace,remove",
                )
            document = _json_patch(document, op)
        self.role_mappings[role] = self._check_mapping(role, document)
        return Outcome(200, {"status": "OK", "message": f"'{role}' updated."})

    def _mapping_delete(self, r: Request, role: str) -> Outcome:
        if role not in self.role_mappings:
            raise _sec_error(404, f"'{role}' not found.")
        del self.role_mappings[role]
        return Outcome(200, {"status": "OK", "message": f"'{role}' deleted."})

    def _role_get(self, r: Request, role: str) -> Outcome:
        if role not in self.roles:
            raise _sec_error(404, f"'{role}' not found.")
        return Outcome(200, {role: self.roles[role]})

    def _role_put(self, r: Request, role: str) -> Outcome:
        if self.roles.get(role, {}).get("reserved"):
            raise _sec_error(403, f"Resource '{role}' is reserved.")
        body = r.body
        if not isinstance(body, dict):
            raise _sec_error(400, "Wrong request body")
        existed = role in self.roles
        self.roles[role] = json.loads(json.dumps(body))
        if existed:
            return Outcome(200, {"status": "OK", "message": f"'{role}' updated."})
        return Outcome(201, {"status": "CREATED", "message": f"'{role}' created."})

    def _role_delete(self, r: Request, role: str) -> Outcome:
        if role not in self.roles:
            raise _sec_error(404, f"'{role}' not found.")
        if self.roles[role].get("reserved"):
            raise _sec_error(403, f"Resource '{role}' is reserved.")
        del self.roles[role]
        return Outcome(200, {"status": "OK", "message": f"'{role}' deleted."})

    # -- indices

    def _index(self, name: str) -> IndexState:
        if name not in self.indices:
            raise ApiError(404, "index_not_found_exception", f"no such index [{name}]")
        return self.indices[name]

    def _semantic_info(self, field_name: str, spec: dict[str, Any], knn: bool) -> dict[str, Any]:
        """What neural-search derives from the model for ``<field>_semantic_info``."""
        chunking = parse_chunking(spec.get("chunking"))  # the semantic chunking section
        model_id = spec.get("model_id")
        if not model_id:
            raise ApiError(
                400, "mapper_parsing_exception", f"model_id is required for [{field_name}]"
            )
        dims: set[tuple[Any, Any]] = set()
        for key in ("model_id", "search_model_id"):
            mid = spec.get(key)
            if mid is None:
                continue
            model = self.models.get(mid)
            if model is None:
                raise ApiError(400, "illegal_argument_exception", f"Failed to find model {mid}")
            config = model.get("model_config")
            if config is None:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"Model config is null for the remote model {mid}.",
                )
            extra = config.get("additional_config") or {}
            dims.add((config.get("embedding_dimension"), extra.get("space_type")))
        if len(dims) != 1:
            raise ApiError(
                400, "illegal_argument_exception", "model_id and search_model_id embed differently"
            )
        ((dimension, space_type),) = dims
        if not knn:
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"index.knn must be true for the dense semantic field [{field_name}]",
            )
        embedding = {
            "type": "knn_vector",
            "dimension": dimension,
            "method": {"name": "hnsw", "engine": "faiss", "space_type": space_type},
        }
        model = {"properties": {"id": {"type": "keyword", "index": False}}}
        if chunking is not None:
            return chunked_layout(embedding, model)
        return {"properties": {"embedding": embedding, "model": model}}

    @staticmethod
    def _flat_settings(settings: dict[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                flat[prefix if prefix.startswith("index.") else f"index.{prefix}"] = node

        walk("", settings)
        return flat

    def _index_create(self, r: Request, index: str) -> Outcome:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_\-.]*", index) or index.startswith((".", "_")):
            raise ApiError(400, "invalid_index_name_exception", f"Invalid index name [{index}]")
        if index in self.indices:
            raise ApiError(
                400, "resource_already_exists_exception", f"index [{index}/abc] already exists"
            )
        if index in self.aliases:
            raise ApiError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{index}], already exists as alias",
            )
        body = r.body or {}
        aliases = body.get("aliases") or {}
        if aliases:
            # security plugin: a create request with aliases also needs the alias permission.
            self.authorize(r.principal, "indices:admin/aliases", index)
            for alias, options in aliases.items():
                self.authorize_index(r.principal, "indices:admin/aliases", alias)
                self._check_alias_name(alias, self.indices)
                if not isinstance(options, dict):
                    raise ApiError(400, "parsing_exception", f"alias [{alias}] must be an object")
        flat = self._flat_settings(body.get("settings") or {})
        knn = flat.get("index.knn")
        if knn is not None and not isinstance(knn, bool) and str(knn) not in ("true", "false"):
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"Failed to parse value [{knn}] for setting [index.knn]",
            )
        flat = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in flat.items()}
        _check_plugin_index_settings(flat)  # issue 12 capacity section below
        flat.setdefault("index.number_of_shards", "1")
        flat.setdefault("index.number_of_replicas", "1")
        properties = dict((body.get("mappings") or {}).get("properties") or {})
        for name, spec in list(properties.items()):
            if spec.get("type") == "semantic":
                info = spec.get("semantic_info_field_name") or f"{name}_semantic_info"
                properties[info] = self._semantic_info(name, spec, flat.get("index.knn") == "true")
        staged = {alias: {**self.aliases.get(alias, {})} for alias in aliases}
        for alias, options in aliases.items():
            staged[alias][index] = self._alias_options(options)
        self._check_write_indices(staged)
        mappings: dict[str, Any] = {"properties": properties}
        meta = (body.get("mappings") or {}).get("_meta")
        if isinstance(meta, dict):  # core MapperService: _meta is kept as given
            mappings["_meta"] = meta
        self.indices[index] = IndexState(flat, mappings)
        self.aliases.update(staged)
        return Outcome(200, {"acknowledged": True, "shards_acknowledged": True, "index": index})

    # -- aliases

    @staticmethod
    def _check_alias_name(alias: str, indices: dict[str, Any]) -> None:
        # OpenSearch core AliasValidator.validateAliasStandalone ->
        # MetadataCreateIndexService.validateIndexOrAliasName: no file-name-invalid
        # character (\\ / * ? " < > | space ,), no '#' or ':', no leading '_', '-' or
        # '+', not "." or "..", at most 255 UTF-8 bytes. Unlike an index name
        # (validateIndexName), an alias may have upper case or a leading '.'.
        # Core is not mirrored here: class and method names only, no tag:line.
        problem = None
        if not alias:
            problem = "alias name is required"
        elif any(c in alias for c in '\\/*?"<>| ,'):
            problem = 'must not contain the following characters [ , \\, /, *, ?, ", <, >, |]'
        elif "#" in alias or ":" in alias:
            problem = "must not contain '#'" if "#" in alias else "must not contain ':'"
        elif alias[0] in "_-+":
            problem = "must not start with '_', '-', or '+'"
        elif alias in (".", ".."):
            problem = "must not be '.' or '..'"
        elif len(alias.encode()) > 255:
            problem = "index name is too long, (" + str(len(alias.encode())) + " > 255)"
        if problem:
            raise ApiError(
                400, "invalid_alias_name_exception", f"Invalid alias name [{alias}], {problem}"
            )
        if alias in indices:
            raise ApiError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same name "
                "as the alias",
            )

    @staticmethod
    def _alias_options(options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - {"is_write_index", "is_hidden", "routing", "filter",
                                  "index_routing", "search_routing"}  # fmt: skip
        if unknown:
            raise ApiError(400, "parsing_exception", f"unknown alias options {sorted(unknown)}")
        if "is_write_index" in options and not isinstance(options["is_write_index"], bool):
            raise ApiError(400, "parsing_exception", "is_write_index must be a boolean")
        return {k: v for k, v in options.items() if k == "is_write_index"}

    @staticmethod
    def _check_write_indices(aliases: dict[str, dict[str, dict[str, Any]]]) -> None:
        for alias, targets in aliases.items():
            flagged = sorted(i for i, o in targets.items() if o.get("is_write_index"))
            if len(flagged) > 1:
                raise ApiError(
                    400,
                    "illegal_state_exception",
                    f"alias [{alias}] has more than one write index [{','.join(flagged)}]",
                )

    def _aliases_of(self, index: str) -> dict[str, dict[str, Any]]:
        return {
            alias: dict(targets[index])
            for alias, targets in sorted(self.aliases.items())
            if index in targets
        }

    @staticmethod
    def _names(spec: dict[str, Any], one: str, many: str) -> list[str]:
        names = spec.get(many) if many in spec else [spec.get(one)]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ApiError(
                400,
                "action_request_validation_exception",
                f"Validation Failed: 1: [{one}] or [{many}] is required;",
            )
        return names

    def _aliases_update(self, r: Request) -> Outcome:
        """``POST /_aliases``: every action is checked, then all apply at once (or none)."""
        actions = (r.body or {}).get("actions") if isinstance(r.body, dict) else None
        if not isinstance(actions, list) or not actions:
            raise ApiError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: No action specified;",
            )
        staged = {alias: {i: dict(o) for i, o in t.items()} for alias, t in self.aliases.items()}
        doomed: set[str] = set()
        for entry in actions:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ApiError(400, "parsing_exception", f"malformed alias action {entry!r}")
            ((kind, spec),) = entry.items()
            if kind not in ("add", "remove", "remove_index") or not isinstance(spec, dict):
                raise ApiError(400, "parsing_exception", f"unknown alias action [{kind}]")
            indices: list[str] = []
            for pattern in self._names(spec, "index", "indices"):
                found = sorted(fnmatch.filter(self.indices, pattern)) if "*" in pattern else (
                    [pattern] if pattern in self.indices else [])  # fmt: skip
                if not found:
                    raise ApiError(404, "index_not_found_exception", f"no such index [{pattern}]")
                indices.extend(found)
            if kind == "remove_index":
                for index in indices:
                    self.authorize(r.principal, "indices:admin/delete", index)
                doomed.update(indices)
                continue
            aliases = self._names(spec, "alias", "aliases")
            for name in indices + aliases:
                self.authorize(r.principal, "indices:admin/aliases", name)
            for alias in aliases:
                for index in indices:
                    if kind == "add":
                        self._check_alias_name(alias, self.indices)
                        options = {k: v for k, v in spec.items() if k not in NAME_KEYS}
                        staged.setdefault(alias, {})[index] = self._alias_options(options)
                    elif index in staged.get(alias, {}):
                        del staged[alias][index]
                    elif spec.get("must_exist", True) is not False:
                        raise ApiError(
                            404, "aliases_not_found_exception", f"aliases [{alias}] missing"
                        )
        for index in doomed:
            for targets in staged.values():
                targets.pop(index, None)
        staged = {alias: targets for alias, targets in staged.items() if targets}
        self._check_write_indices(staged)
        for index in doomed:
            del self.indices[index]
        self.aliases = staged
        return Outcome(200, {"acknowledged": True})

    def _alias_get(self, r: Request, name: str) -> Outcome:
        """``GET /_alias/{name}``: no index in the path means *every* index, system ones too."""
        return self._get_aliases(r, None, name)

    def _alias_get_in(self, r: Request, expression: str, name: str) -> Outcome:
        """``GET /{index expression}/_alias/{name}``: only the indexes the expression names."""
        return self._get_aliases(r, expression, name)

    def _resolve_expression(self, expression: str | None) -> list[str] | None:
        """The concrete indexes an index expression names; None for "all indices".

        security 3.7.0.0 src/main/java/org/opensearch/security/privileges/actionlevel/legacy/
        IndexResolverReplacer.java: GetAliasesRequest is an IndicesRequest.Replaceable
        (:817-822) whose indices are empty when the path has none; empty, ``*`` and
        ``_all`` are "all without remote" (:131-148) and resolve to local all
        (:241-246, :370-374), which becomes every concrete index of the cluster (:533-539,
        :557-559). Otherwise wildcards expand to the matching concrete indexes, an alias
        to the indexes behind it (:311-339), and a name that resolves to nothing is
        checked as given (:340-346).
        """
        parts = [p for p in (expression or "").split(",") if p]
        if not parts or parts == ["*"] or "_all" in parts:
            return None
        every = sorted({*self.indices, *self.system_indices})
        found: list[str] = []
        for part in parts:
            if "*" in part:
                found.extend(fnmatch.filter(every, part))
            elif part in self.aliases:
                found.extend(sorted(self.aliases[part]))
            else:
                found.append(part)
        return sorted(set(found))

    def _get_aliases(self, r: Request, expression: str | None, name: str) -> Outcome:
        resolved = self._resolve_expression(expression)
        # Legacy privileges evaluator (the default): indices:admin/aliases/get is
        # needed on every resolved index (PrivilegesEvaluatorImpl.java:484-533);
        # do_not_fail_on_forbidden, which would reduce the request to the allowed
        # indexes (:484-492, DNFOF_MATCHER :117-127), is off unless configured
        # (:159; ConfigV7.java:81). An expression that resolves to no index is
        # granted (RuntimeOptimizedActionPrivileges.java:106-117).
        # security issue #5871: fixed only by the next-gen evaluator.
        every = sorted({*self.indices, *self.system_indices}) if resolved is None else resolved
        for index in every:
            self.authorize(r.principal, "indices:admin/aliases/get", index)
        if resolved is not None:
            for index in resolved:
                if index not in self.indices and index not in self.system_indices:
                    # GetAliasesRequest's options are strictExpandHidden: a missing
                    # concrete name is an error, a wildcard matching nothing is not.
                    raise ApiError(404, "index_not_found_exception", f"no such index [{index}]")
        scope = set(self.indices) if resolved is None else set(resolved)
        holders = sorted(i for i in self.aliases.get(name, {}) if i in scope)
        if not holders:
            # OpenSearch RestGetAliasesAction.buildRestResponse: an explicitly
            # named alias that matched nothing is a 404 with this body.
            return Outcome(404, {"error": f"alias [{name}] missing", "status": 404})
        return Outcome(
            200, {index: {"aliases": {name: dict(self.aliases[name][index])}} for index in holders}
        )

    def _index_get(self, r: Request, index: str) -> Outcome:
        state = self._index(index)
        nested: dict[str, Any] = {}
        for key, value in state.settings.items():
            node = nested
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return Outcome(
            200,
            {
                index: {
                    "aliases": self._aliases_of(index),
                    "mappings": json.loads(json.dumps(state.mappings)),
                    "settings": nested,
                }
            },
        )

    def _index_delete(self, r: Request, index: str) -> Outcome:
        self._index(index)
        del self.indices[index]
        # An index's aliases go with it; an alias on other indexes keeps those.
        for alias in [a for a, targets in self.aliases.items() if index in targets]:
            del self.aliases[alias][index]
            if not self.aliases[alias]:
                del self.aliases[alias]
        return Outcome(200, {"acknowledged": True})

    def _index_put_mapping(self, r: Request, index: str) -> Outcome:
        state = self._index(index)
        new_props = ((r.body or {}).get("properties")) or {}
        if isinstance((r.body or {}).get("_meta"), dict):  # _meta is replaced, not merged
            state.mappings["_meta"] = r.body["_meta"]
        current = state.mappings["properties"]
        knn = state.settings.get("index.knn") == "true"
        for name, spec in new_props.items():
            old = current.get(name)
            if old is None:
                current[name] = spec
                if spec.get("type") == "semantic":
                    current[f"{name}_semantic_info"] = self._semantic_info(name, spec, knn)
                continue
            if old.get("type") != spec.get("type"):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"mapper [{name}] cannot be changed from type [{old.get('type')}] "
                    f"to [{spec.get('type')}]",
                )
            if spec.get("type") != "semantic":
                current[name] = spec
                continue
            # neural-search SemanticFieldMapper: only these parameters are updateable.
            for param, default in (("raw_field_type", "text"), ("chunking", None),
                                   ("semantic_info_field_name", None)):  # fmt: skip
                if old.get(param, default) != spec.get(param, default):
                    raise ApiError(
                        400,
                        "illegal_argument_exception",
                        f"Mapper for [{name}] conflicts with existing mapper:\n\tCannot update "
                        f"parameter [{param}] from [{old.get(param, default)}] to "
                        f"[{spec.get(param, default)}]",
                    )
            info_name = old.get("semantic_info_field_name") or f"{name}_semantic_info"
            info = self._semantic_info(name, spec, knn)
            old_vec = _embedding_mapping(current[info_name])
            new_vec = _embedding_mapping(info)
            for param in ("dimension",):
                if old_vec[param] != new_vec[param]:
                    raise ApiError(
                        400,
                        "illegal_argument_exception",
                        f"Mapper for [{info_name}.embedding] conflicts with existing mapper:\n\t"
                        f"Cannot update parameter [{param}] from [{old_vec[param]}] "
                        f"to [{new_vec[param]}]",
                    )
            if old_vec["method"]["space_type"] != new_vec["method"]["space_type"]:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"Mapper for [{info_name}.embedding] conflicts with existing mapper:\n\t"
                    "Cannot update parameter [method]",
                )
            current[name] = spec
        return Outcome(200, {"acknowledged": True})

    def _index_put_settings(self, r: Request, index: str) -> Outcome:
        state = self._index(index)
        flat = self._flat_settings(r.body or {})
        static = [k for k in flat if k in ("index.knn", "index.number_of_shards")]
        if static:
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"Can't update non dynamic settings [{static}] for open indices [[{index}]]",
            )
        _check_plugin_index_settings(flat)  # issue 12 capacity section below
        for key, value in flat.items():
            if value is None:  # core: a null resets a dynamic setting to its default
                state.settings.pop(key, None)
                continue
            state.settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return Outcome(200, {"acknowledged": True})

    def _index_refresh(self, r: Request, index: str) -> Outcome:
        self._index(index)
        return Outcome(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})

    def _semantic_fields(self, state: IndexState) -> dict[str, dict[str, Any]]:
        return {
            n: s for n, s in state.mappings["properties"].items() if s.get("type") == "semantic"
        }

    def _semantic_ingest(self, principal: str, state: IndexState, source: dict[str, Any]) -> None:
        """The destination's system processor: embed each semantic field with its model.

        neural-search 3.7.0.0 SemanticFieldProcessor.java:505-531 collects every
        semantic field's string value and embeds it with the field's model_id;
        an existing ``<field>_semantic_info`` is reused only when the mapping sets
        ``skip_existing_embedding`` (SemanticFieldProcessor.java:242-251,
        SemanticMappingUtils.java:513-530; off by default), so a copied one is
        overwritten with a fresh embedding.
        """
        for name, spec in self._semantic_fields(state).items():
            if isinstance(source.get(name), str):
                self.authorize_inference(principal, spec["model_id"])
                self._embed_semantic(name, spec, [source])

    @staticmethod
    def _check_write_block(index: str, state: IndexState) -> None:
        # OpenSearch core IndexMetadata.INDEX_WRITE_BLOCK (index.blocks.write).
        if state.settings.get("index.blocks.write") == "true":
            raise ApiError(
                403,
                "cluster_block_exception",
                f"index [{index}] blocked by: [FORBIDDEN/8/index write (api)];",
            )

    def _doc_put(self, r: Request, index: str, doc: str) -> Outcome:
        state = self._index(index)
        self._check_write_block(index, state)
        source = dict(r.body or {})
        self._run_default_pipeline(state, source, r.query)
        self._semantic_ingest(r.principal, state, source)
        result = "updated" if doc in state.docs else "created"
        state.docs[doc] = source
        return Outcome(
            201 if result == "created" else 200, self._write_response(index, doc, result)
        )

    def _doc_get(self, r: Request, index: str, doc: str) -> Outcome:
        state = self._index(index)
        if doc not in state.docs:
            return Outcome(404, {"_index": index, "_id": doc, "found": False})
        return Outcome(
            200,
            {"_index": index, "_id": doc, "_version": 1, "_seq_no": 0, "_primary_term": 1,
             "found": True, "_source": state.docs[doc]},
        )  # fmt: skip

    def _search(self, r: Request, index: str) -> Outcome:
        state = self._index(index)
        body = r.body or {}
        query = body.get("query", {"match_all": {}})
        size = int(body.get("size", 10))
        docs = list(state.docs.items())
        search_pipeline_of(self, r, index)  # a missing pipeline fails the search (see there)
        if isinstance(query, dict) and "neural" in query:
            ((name, spec),) = query["neural"].items()
            semantic = self._semantic_fields(state).get(name)
            if semantic is None:
                raise ApiError(
                    400, "illegal_argument_exception", f"[{name}] is not a semantic field"
                )
            mid = semantic.get("search_model_id") or semantic["model_id"]
            self.authorize_inference(r.principal, mid)
            (q,) = self.embed(mid, [str(spec["query_text"])], "query")
            info = semantic.get("semantic_info_field_name") or f"{name}_semantic_info"
            scored = []
            for doc_id, source in docs:
                # A chunked field: nested query, ScoreMode.Max (the best chunk scores the
                # document; semantic chunking section). Unchunked: its one vector.
                cosines = [
                    sum(a * b for a, b in zip(q, vector, strict=True))
                    for vector in semantic_vectors(source.get(info))
                ]
                if cosines:
                    scored.append(((1 + max(cosines)) / 2, doc_id, source))
            scored.sort(key=lambda t: -t[0])
            k = int(spec.get("k", size))
            top = scored[: min(k, size)]
            return Outcome(200, _hits(index, [(d, s) for _, d, s in top], [sc for sc, _, _ in top]))
        found = self._ids_search(query, docs)  # the _bulk section (loader's --resume)
        if found is None:
            found = [(d, s) for d, s in docs if matches(query, s)]
        if body.get("sort") or body.get("_source") is False:
            return self._id_page(index, body, found, size)  # the migration section
        return Outcome(200, _hits(index, found[:size]))

    # -- _reindex and the tasks API

    def _count(self, r: Request, index: str) -> Outcome:
        state = self._index(index)
        query = (r.body or {}).get("query", {"match_all": {}})
        count = sum(1 for s in state.docs.values() if matches(query, s))
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        return Outcome(200, {"count": count, "_shards": shards})

    def _reindex(self, r: Request) -> Outcome:
        """``POST _reindex``: a scroll over a snapshot of the source, bulk-written to dest.

        Only what the migration uses: ``source.index``, ``source._source.excludes``,
        ``dest.index``, ``wait_for_completion=false`` (the answer is ``{"task":
        "node:id"}``) and ``requests_per_second`` (recorded, reported in the status).
        The work happens as the task is polled (``reindex_docs_per_poll`` documents per
        ``GET _tasks``), so a test sees it running. Like core's
        AbstractAsyncBulkByScrollAction, a batch with failed items ends the task with
        ``response.failures`` (one per item, status and cause); documents already
        written stay written.
        """
        body = r.body or {}
        source = body.get("source") or {}
        dest = body.get("dest") or {}
        src_name, dest_name = source.get("index"), dest.get("index")
        if not isinstance(src_name, str) or not isinstance(dest_name, str):
            raise ApiError(
                400, "action_request_validation_exception",
                "Validation Failed: 1: use _reindex with source.index and dest.index;",
            )  # fmt: skip
        # IndexResolverReplacer.java:855-857: the destination and the search request
        # are resolved and checked as index requests of the caller.
        self.authorize_index(r.principal, "indices:data/read/search", src_name)
        self.authorize(r.principal, "indices:data/write/bulk")
        self.authorize_index(r.principal, "indices:data/write/bulk[s]", dest_name)
        self.authorize_index(r.principal, "indices:data/write/index", dest_name)
        src = self.resolve(src_name, write=False)
        dst = self.resolve(dest_name, write=True)
        state = self._index(src)
        self._index(dst)
        excludes = ((source.get("_source") or {}).get("excludes")) or []
        selected = source.get("query") or {"match_all": {}}  # the migration's catch-up rounds
        snapshot = [
            (doc_id, {k: v for k, v in doc.items() if k not in excludes})
            for doc_id, doc in state.docs.items()
            if matches(selected, doc)
        ]
        rps = float(r.query.get("requests_per_second", "-1"))
        task = {
            "principal": r.principal,
            "source": src,
            "dest": dst,
            "pending": snapshot,
            "total": len(snapshot),
            "created": 0,
            "updated": 0,
            "batches": 0,
            "failures": [],
            "error": None,
            "completed": False,
            "canceled": None,
            "requests_per_second": rps if rps > 0 else -1.0,
            "started": time.time(),
        }
        if r.query.get("wait_for_completion", "true") != "false":
            while not task["completed"]:
                self._advance_reindex(task)
            return Outcome(200, self._bulk_by_scroll(task))
        task_id = f"{NODE_ID}:{next(self._task_ids)}"
        self.reindex_tasks[task_id] = task
        return Outcome(200, {"task": task_id})

    def _advance_reindex(self, task: dict[str, Any]) -> None:
        if task["completed"]:
            return
        if self.reindex_task_dies:
            # A task that dies (node left, dest deleted): GET _tasks shows completed with
            # `error` and no response (TaskResult: error or response, never both).
            task["error"] = {"type": "node_closed_exception", "reason": self.reindex_task_dies}
            task["completed"] = True
            return
        batch = task["pending"][: self.reindex_docs_per_poll]
        task["pending"] = task["pending"][len(batch) :]
        dest = self.indices.get(task["dest"])
        if dest is None:
            dest = self._auto_create(task["dest"])  # the migration section
        task["batches"] += 1
        for doc_id, source in batch:
            doc = json.loads(json.dumps(source))
            try:
                if doc_id in self.reindex_failing_docs:
                    raise ApiError(
                        500, "status_exception",
                        "Error from remote service: SageMaker endpoint returned 503 "
                        "ModelError for this batch",
                    )  # fmt: skip
                self._check_write_block(task["dest"], dest)
                self._semantic_ingest(task["principal"], dest, doc)
            except ApiError as error:
                task["failures"].append({
                    "index": task["dest"], "id": doc_id, "status": error.status,
                    "cause": {"type": error.error_type, "reason": error.reason},
                })  # fmt: skip
                continue
            key = "updated" if doc_id in dest.docs else "created"
            task[key] += 1
            dest.docs[doc_id] = doc
        if task["failures"] or not task["pending"]:
            task["completed"] = True

    @staticmethod
    def _bulk_by_scroll(task: dict[str, Any]) -> dict[str, Any]:
        return {
            "took": int((time.time() - task["started"]) * 1000),
            "timed_out": False,
            "total": task["total"],
            "created": task["created"],
            "updated": task["updated"],
            "deleted": 0,
            "batches": task["batches"],
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": task["requests_per_second"],
            "throttled_until_millis": 0,
            "failures": task["failures"],
        } | ({"canceled": task["canceled"]} if task.get("canceled") else {})

    def _tasks_get(self, r: Request, task_id: str) -> Outcome:
        """``GET _tasks/<id>``: ``completed``, the task, then ``response`` or ``error``."""
        task = self.reindex_tasks.get(task_id)
        if task is None:
            raise ApiError(
                404, "resource_not_found_exception",
                f"task [{task_id}] isn't running and hasn't stored its results",
            )  # fmt: skip
        self._advance_reindex(task)
        node, number = task_id.split(":")
        info = {
            "node": node, "id": int(number), "type": "transport",
            "action": "indices:data/write/reindex", "cancellable": True,
            "cancelled": bool(task.get("canceled")),
            "headers": {}, "start_time_in_millis": int(task["started"] * 1000),
            "running_time_in_nanos": int((time.time() - task["started"]) * 1e9),
            "description": f"reindex from [{task['source']}] to [{task['dest']}]",
        }  # fmt: skip
        # BulkByScrollTask.Status: the running counts, what a progress bar reads.
        info["status"] = {
            k: v for k, v in self._bulk_by_scroll(task).items()
            if k not in ("took", "timed_out", "failures")
        }  # fmt: skip
        body: dict[str, Any] = {"completed": task["completed"], "task": info}
        if task["completed"]:
            if task["error"]:
                body["error"] = task["error"]
            else:
                body["response"] = self._bulk_by_scroll(task)
        return Outcome(200, body)

    # -- _bulk with semantic ingest (issue 12: the loader)
    #
    # What a loader sees when it writes through ``POST /{index}/_bulk`` into a
    # semantic field. Sources:
    #
    # * Request and response shape: the OpenSearch API specification in
    #   tests/support/opensearch-api-spec (``/{index}/_bulk``; items are
    #   ``_core.bulk___ResponseItem``: ``_index``, ``status``, and ``error``, an
    #   ``_common___ErrorCause``, on failure). The top-level answer is 200 with
    #   ``errors: true`` when any item failed.
    # * Batching: the semantic field's system processor embeds the documents of a
    #   bulk request in sub-batches of ``index.neural_search.semantic_ingest_batch_size``
    #   (neural-search 3.7.0.0 .../processor/factory/SemanticFieldProcessorFactory.java:
    #   117-118, default 10 at .../settings/NeuralSearchSettings.java:63-64), one
    #   ML Commons predict per sub-batch (SemanticFieldProcessor.java:539-571, 764-771).
    # * A failed predict fails every document of its sub-batch with the same
    #   exception (SemanticFieldProcessor.java:739-740 puts it against each text,
    #   setInference rethrows it at :386-388, batchSetInference records it on the
    #   document at :785).
    # * That exception, for a remote model, carries the endpoint's own HTTP status:
    #   ``OpenSearchStatusException("Error from remote service: " + body,
    #   RestStatus.fromCode(statusCode))`` (ml-commons 3.7.0.0
    #   ml-algorithms/.../remote/MLSdkAsyncHttpResponseHandler.java:181-188); a
    #   SageMaker ``ThrottlingException`` becomes RemoteConnectorThrottlingException
    #   with the same status and a fixed message (:115-136), retried by ML Commons
    #   only up to the connector's ``max_retry_times`` (0 by default, DESIGN.md).
    #   So a SageMaker 429/503/424 reaches the bulk item as that status with error
    #   type ``status_exception`` (OpenSearchStatusException's name). That core
    #   renders an ingest failure on the item with the cause's status and type
    #   (BulkItemResponse.Failure, ExceptionsHelper.status) is from core class
    #   names only, like the reindex rules above: inferred, not read at a tag.
    # * Write-queue rejections are per item too: 429 ``es_rejected_execution_exception``
    #   (core EsRejectedExecutionException; class name only).
    #
    # Limits, said plainly: only ``index``, ``create`` and ``delete`` actions, and
    # only items for the index of the path; the body must end with a newline (core
    # BulkRequestParser: "The bulk request must be terminated by a newline [\n]").
    #
    # Fault hooks: :meth:`fail_embeddings` (the next N predicts of ingest fail
    # with a relayed SageMaker status), ``bulk_poison_docs`` (documents whose
    # sub-batch always fails, as a text the endpoint always refuses does),
    # ``bulk_rejections`` (the next N items are rejected with 429). Counters:
    # ``bulk_predict_calls`` (endpoint invocations made by ingest), ``bulk_requests``,
    # ``bulk_sent_ids`` (every id an index/create item carried, in order).

    REMOTE_FAILURES: ClassVar[dict[int, str]] = {
        # ml-commons MLSdkAsyncHttpResponseHandler.java:129-133 (throttling, fixed text)
        429: "Error from remote service: The request was denied due to remote server "
        "throttling. To change the retry policy and behavior, please update the connector "
        "client_config.",
        # :185 REMOTE_SERVICE_ERROR + the endpoint's body (SageMaker's error shapes)
        503: 'Error from remote service: {"message":"Service Unavailable: the endpoint is '
        'scaling"}',
        424: 'Error from remote service: {"ErrorCode":"CLIENT_ERROR_FROM_MODEL","Message":'
        '"Received server error (500) from primary with message \\"worker died\\""}',
    }

    def fail_embeddings(self, count: int, status: int) -> None:
        """The next ``count`` ingest predicts fail as the endpoint answering ``status`` would."""
        with self.lock:
            self.bulk_embed_failures.extend([status] * count)

    def _bulk_routes(self) -> list[Route]:
        parse = self._parse_ndjson
        return [
            Route("POST", r"/(?P<index>[^/_][^/]*)/_bulk", "indices:data/write/bulk",
                  self._bulk, parse),
            Route("PUT", r"/(?P<index>[^/_][^/]*)/_bulk", "indices:data/write/bulk",
                  self._bulk, parse),
        ]  # fmt: skip

    @staticmethod
    def _parse_ndjson(raw: bytes, headers: dict[str, str]) -> list[Any]:
        text = raw.decode("utf-8", errors="strict")
        if not text.endswith("\n"):
            raise ApiError(
                400, "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            )  # fmt: skip
        lines = []
        for number, line in enumerate(text.split("\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except ValueError as error:
                raise ApiError(
                    400, "x_content_parse_exception", f"[{number}:1] malformed JSON: {error}"
                ) from error
        return lines

    def _bulk_items(self, lines: list[Any], index: str) -> list[tuple[str, str, Any]]:
        """(action, id, source) triples; a malformed request is one 400, as core's parser does."""
        items: list[tuple[str, str, Any]] = []
        position = 0
        while position < len(lines):
            line = lines[position]
            if not isinstance(line, dict) or len(line) != 1:
                raise ApiError(400, "illegal_argument_exception",
                               f"Malformed action/metadata line [{position + 1}]")  # fmt: skip
            ((action, meta),) = line.items()
            if action not in ("index", "create", "delete") or not isinstance(meta, dict):
                raise ApiError(400, "illegal_argument_exception",
                               f"the emulator's _bulk has no action [{action}]")  # fmt: skip
            named = meta.get("_index")
            if named is not None and self.resolve(str(named), write=True) != index:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "the emulator's _bulk takes items for the path's index only",
                )
            doc_id = meta.get("_id")
            if doc_id is None:
                doc_id = _new_id()  # auto-generated id, as core does
            if action == "delete":
                items.append((action, str(doc_id), None))
                position += 1
                continue
            if position + 1 >= len(lines) or not isinstance(lines[position + 1], dict):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"Validation Failed: 1: source is missing for [{doc_id}];",
                )
            items.append((action, str(doc_id), lines[position + 1]))
            position += 2
        return items

    def _bulk(self, r: Request, index: str) -> Outcome:
        started = time.perf_counter()
        state = self._index(index)
        items = self._bulk_items(r.body or [], index)
        self.bulk_requests += 1
        self.bulk_sent_ids.extend(doc_id for action, doc_id, _ in items if action != "delete")
        results: list[dict[str, Any] | None] = [None] * len(items)

        def fail(position: int, status: int, error_type: str, reason: str) -> None:
            action, doc_id, _ = items[position]
            error = {"type": error_type, "reason": reason}
            results[position] = {
                action: {"_index": index, "_id": doc_id, "status": status, "error": error}
            }

        writes: list[tuple[int, dict[str, Any]]] = []
        for position, (action, doc_id, source) in enumerate(items):
            if action == "delete":
                found = state.docs.pop(doc_id, None) is not None
                body = self._write_response(index, doc_id, "deleted" if found else "not_found")
                results[position] = {action: {**body, "status": 200 if found else 404}}
                continue
            try:
                self._check_write_block(index, state)
            except ApiError as error:
                fail(position, error.status, error.error_type, error.reason)
                continue
            if self.bulk_rejections > 0:
                self.bulk_rejections -= 1
                fail(position, 429, "es_rejected_execution_exception",
                     "rejected execution of coordinating operation [write queue full]")  # fmt: skip
                continue
            if action == "create" and doc_id in state.docs:
                fail(position, 409, "version_conflict_engine_exception",
                     f"[{doc_id}]: version conflict, document already exists")  # fmt: skip
                continue
            written = json.loads(json.dumps(source))
            self._run_default_pipeline(state, written, r.query)
            writes.append((position, written))
        size = int(state.settings.get("index.neural_search.semantic_ingest_batch_size", "10"))
        fields = self._semantic_fields(state)
        # issue 12 capacity section: the sub-batches' predicts hold pool connections at once.
        pooled = self._pool_acquire(fields, math.ceil(len(writes) / size))
        for start in range(0, len(writes), size):
            batch = writes[start : start + size]
            embedded = [(p, s) for p, s in batch if any(isinstance(s.get(n), str) for n in fields)]
            failure = self._bulk_embed(r.principal, fields, embedded, items) if (
                pooled.take()) else pooled.refusal  # fmt: skip
            for position, source in batch:
                if failure is not None and any(p == position for p, _ in embedded):
                    fail(position, *failure)
                    continue
                action, doc_id, _ = items[position]
                result = "updated" if doc_id in state.docs else "created"
                state.docs[doc_id] = source
                body = self._write_response(index, doc_id, result)
                results[position] = {
                    action: {**body, "status": 201 if result == "created" else 200}
                }
        pooled.release()
        errors = any("error" in next(iter(item.values())) for item in results if item)
        took = int((time.perf_counter() - started) * 1000)
        return Outcome(200, {"took": took, "errors": errors, "items": results})

    # -- issue 12 capacity section: the connector's connection pool (opt-in)
    #
    # ml-commons 3.7.0.0: each data node holding the remote model has its own HTTP client
    # for the connector with client_config.max_connection connections
    # (ml-algorithms/.../remote/RemoteModel.java:148, AwsConnectorExecutor.java:216-251,
    # common/.../httpclient/MLHttpClientFactory.java:66-70; default 30 when the connector
    # has no client_config, AbstractConnectorExecutor.java:34-40); predicts go round robin
    # to the nodes (plugin/.../task/MLTaskDispatcher.java:93-100). No acquire timeout is
    # set (MLHttpClientFactory.java:66-73), so the AWS SDK's default (10 s; ml-commons
    # issue #4717) applies, and a request that gets no connection in time fails without
    # an HTTP status: 500 "Error communicating with remote model: " + the SDK's message
    # (MLSdkAsyncHttpResponseHandler.java:101-107). neural-search starts all sub-batch
    # predicts of a bulk request at once (core AbstractBatchingProcessor.batchExecute,
    # class name only), so they hold connections together for the endpoint's time.
    #
    # Knobs: ``emulate_connection_pool`` (off by default), ``endpoint_seconds`` (how long
    # each predict holds its connection), ``pool_acquire_timeout`` (the SDK's 10 s),
    # ``data_nodes``. Counters: ``pool_refusals``, ``pool_peak`` (connections in use).

    emulate_connection_pool = False
    endpoint_seconds = 0.0
    pool_acquire_timeout = 10.0
    data_nodes = 1
    ACQUIRE_REFUSAL = (
        "Error communicating with remote model: Acquire operation took longer than the "
        "configured maximum time. This indicates that a request cannot get a connection "
        "from the pool within the specified maximum time. This can be due to high request rate."
    )

    def _pool_acquire(self, fields: dict[str, dict[str, Any]], predicts: int) -> _Pooled:
        if not self.emulate_connection_pool or not fields or predicts == 0:
            return _Pooled(None, predicts, [])
        model = self.models.get(next(iter(fields.values())).get("model_id", "")) or {}
        connector_id = str(model.get("connector_id", ""))
        size = int(
            (self.connectors.get(connector_id, {}).get("client_config") or {}).get(
                "max_connection", CLIENT_CONFIG_DEFAULTS["max_connection"]
            )
        )
        with self.lock:
            pools = self.__dict__.setdefault("_pools", {})
            for node in range(self.data_nodes):
                pools.setdefault((connector_id, node), threading.BoundedSemaphore(size))
            self.__dict__.setdefault("_pool_next", itertools.count())
        held: list[threading.BoundedSemaphore] = []
        granted = 0
        # The emulator serves one request at a time under its lock; the remote calls of a
        # real cluster do not hold anything of the cluster's, so other requests run meanwhile.
        levels = 0
        while True:
            try:
                self.lock.release()
            except RuntimeError:  # no longer held by this thread
                break
            levels += 1
        try:
            for _ in range(predicts):
                node = next(self.__dict__["_pool_next"]) % self.data_nodes
                pool = self.__dict__["_pools"][(connector_id, node)]
                if pool.acquire(timeout=self.pool_acquire_timeout):
                    held.append(pool)
                    granted += 1
            with self.lock:
                self.pool_in_use = getattr(self, "pool_in_use", 0) + granted
                self.pool_peak = max(getattr(self, "pool_peak", 0), self.pool_in_use)
                self.pool_refusals = getattr(self, "pool_refusals", 0) + predicts - granted
            if held and self.endpoint_seconds:
                time.sleep(self.endpoint_seconds)  # the predicts run in parallel at the endpoint
        finally:
            for _ in range(levels):
                self.lock.acquire()
        return _Pooled(self, granted, held)

    def _bulk_embed(
        self,
        principal: str,
        fields: dict[str, dict[str, Any]],
        batch: list[tuple[int, dict[str, Any]]],
        items: list[tuple[str, str, Any]],
    ) -> tuple[int, str, str] | None:
        """One predict per semantic field for a sub-batch; its failure, or None (see above)."""
        if not batch:
            return None
        try:
            self.authorize_inference(principal)
        except ApiError as error:
            return error.status, error.error_type, error.reason
        with self.lock:
            status = self.bulk_embed_failures.pop(0) if self.bulk_embed_failures else None
        self.bulk_predict_calls += 1
        if status is None and any(items[p][1] in self.bulk_poison_docs for p, _ in batch):
            status = 424
        if status is not None:
            return status, "status_exception", self.REMOTE_FAILURES[status]
        for name, spec in fields.items():
            sources = [s for _, s in batch if isinstance(s.get(name), str)]
            try:
                self._embed_semantic(name, spec, sources)
            except ApiError as error:
                return error.status, error.error_type, error.reason
        return None

    def _embed_semantic(
        self, name: str, spec: dict[str, Any], sources: list[dict[str, Any]]
    ) -> None:
        """Embed ``name`` of each source (one predict) into ``<name>_semantic_info``.

        Unchunked: one vector per document. Chunked: the field's chunkers split the
        text and every chunk gets its own vector and its text (the semantic chunking
        section below has the sources).
        """
        chunkers = parse_chunking(spec.get("chunking"))
        info = spec.get("semantic_info_field_name") or f"{name}_semantic_info"
        pieces = [chunk_text(s[name], chunkers) if chunkers else [s[name]] for s in sources]
        flat = [text for texts in pieces for text in texts]
        vectors = iter(self.embed(spec["model_id"], flat, "passage") if flat else [])
        for source, texts in zip(sources, pieces, strict=True):
            model = {"id": spec["model_id"]}
            if chunkers is None:
                source[info] = {"embedding": next(vectors), "model": model}
            else:
                chunks = [{"text": text, "embedding": next(vectors)} for text in texts]
                source[info] = {"chunks": chunks, "model": model}

    def _ids_search(self, query: Any, docs: list[tuple[str, dict[str, Any]]]) -> list | None:
        """An ``ids`` query (core IdsQueryBuilder: ``{"ids": {"values": [...]}}``), or None.

        The loader's ``--resume`` asks which ids exist with it: a search permission,
        which the search-client role has (it has no ``indices:data/read/mget``)."""
        if not (isinstance(query, dict) and set(query) == {"ids"}):
            return None
        wanted = (query["ids"] or {}).get("values")
        if not isinstance(wanted, list):
            raise ApiError(400, "parsing_exception", "[ids] query needs a values array")
        wanted_set = {str(v) for v in wanted}
        return [(d, s) for d, s in docs if d in wanted_set]

    # -- writes during a migration, and cancelling its copy (issue 11)
    #
    # What the re-embedding migration (lambdas/ml_setup/catchup.py) relies on
    # beyond _reindex. All OpenSearch core, which is not mirrored here: class
    # names only, each rule marked read (from the API specification in
    # tests/support/opensearch-api-spec) or inferred.
    #
    # * Ingest pipelines ``PUT/GET/DELETE /_ingest/pipeline/{id}``: permissions
    #   cluster:admin/ingest/pipeline/put|get|delete (PutPipelineAction.NAME and
    #   siblings; the put/delete names also appear in security 3.7.0.0
    #   config/roles.yml:87-88). Only the ``set`` processor with a literal value is
    #   emulated (SetProcessor; a non-string value is kept as it is: inferred).
    # * ``index.default_pipeline`` runs on every index request into the index that
    #   names no ``pipeline`` (``_doc`` and ``_bulk`` items); ``?pipeline=_none`` or
    #   another pipeline replaces it (IngestService.resolvePipelines: inferred). It
    #   runs before the semantic field's system processor, which still runs
    #   (NeuralSearch.java:473 registers it as a system ingest processor; order and
    #   coexistence inferred from core's IngestService, not read). A default pipeline
    #   that does not exist fails the write with 400 (inferred).
    # * ``DELETE /{index}/_doc/{id}``: indices:data/write/delete; 404 ``not_found``
    #   for a missing id; refused by ``index.blocks.write`` like any write.
    # * Search with ``sort: [{"_id": ...}]``, ``search_after`` and ``_source:
    #   false`` (request/response shape read from the API specification: each hit
    #   carries its ``sort`` values; sorting on ``_id`` needs
    #   ``indices.id_field_data.enabled``, true by default: inferred).
    # * ``_reindex`` with ``source.query`` copies only matching documents; a bulk
    #   write to a destination that no longer exists creates it with no mapping
    #   (AutoCreateIndex, ``action.auto_create_index`` true by default: inferred),
    #   which is why an abandoned copy must cancel its task first.
    # * ``POST /_tasks/{id}/_cancel`` (cluster:admin/tasks/cancel, CancelTasksAction.NAME:
    #   inferred from the class name): answers a TaskListResponseBase (``nodes`` ->
    #   node -> ``tasks`` -> TaskInfo, shape read from the specification). A reindex
    #   stops at its next batch boundary and completes with ``response.canceled``
    #   "by user request" (string field read from the specification; the text is
    #   core BulkByScrollTask's, inferred); ``wait_for_completion=true`` answers after
    #   that, and in the emulator the boundary is immediate. A task that is not
    #   running (finished, unknown) is 404 ``resource_not_found_exception``
    #   (TransportTasksAction: inferred).

    def _migration_routes(self) -> list[Route]:
        return [
            Route("POST", r"/_tasks/(?P<task_id>[^/]+)/_cancel", "cluster:admin/tasks/cancel",
                  self._tasks_cancel),
            Route("PUT", r"/_ingest/pipeline/(?P<pid>[^/]+)", "cluster:admin/ingest/pipeline/put",
                  self._ingest_pipeline_put),
            Route("GET", r"/_ingest/pipeline/(?P<pid>[^/]+)", "cluster:admin/ingest/pipeline/get",
                  self._ingest_pipeline_get),
            Route("DELETE", r"/_ingest/pipeline/(?P<pid>[^/]+)",
                  "cluster:admin/ingest/pipeline/delete", self._ingest_pipeline_delete),
            Route("DELETE", r"/(?P<index>[^/_][^/]*)/_doc/(?P<doc>[^/]+)",
                  "indices:data/write/delete", self._doc_delete),
        ]  # fmt: skip

    def _ingest_pipeline_put(self, r: Request, pid: str) -> Outcome:
        body = r.body if isinstance(r.body, dict) else {}
        for processor in body.get("processors") or []:
            config = processor.get("set") if isinstance(processor, dict) else None
            if not isinstance(config, dict) or "field" not in config or "value" not in config:
                raise ApiError(  # not a server rule: the emulator has no other processor
                    400, "illegal_argument_exception",
                    f"the emulator supports only set processors with field and value: {processor}",
                )  # fmt: skip
        self.ingest_pipelines[pid] = body
        return Outcome(200, {"acknowledged": True})

    def _ingest_pipeline_get(self, r: Request, pid: str) -> Outcome:
        if pid not in self.ingest_pipelines:
            return Outcome(404, {})
        return Outcome(200, {pid: self.ingest_pipelines[pid]})

    def _ingest_pipeline_delete(self, r: Request, pid: str) -> Outcome:
        if pid not in self.ingest_pipelines:
            raise ApiError(404, "resource_not_found_exception", f"pipeline [{pid}] is missing")
        del self.ingest_pipelines[pid]
        return Outcome(200, {"acknowledged": True})

    def _run_default_pipeline(
        self, state: IndexState, source: dict[str, Any], query: dict[str, str]
    ) -> None:
        pid = query.get("pipeline") or state.settings.get("index.default_pipeline")
        if not pid or pid == "_none":
            return
        pipeline = self.ingest_pipelines.get(pid)
        if pipeline is None:
            raise ApiError(
                400, "illegal_argument_exception", f"pipeline with id [{pid}] does not exist"
            )
        for processor in pipeline.get("processors") or []:
            config = processor["set"]
            source[config["field"]] = json.loads(json.dumps(config["value"]))

    def _doc_delete(self, r: Request, index: str, doc: str) -> Outcome:
        state = self._index(index)
        self._check_write_block(index, state)
        found = state.docs.pop(doc, None) is not None
        body = self._write_response(index, doc, "deleted" if found else "not_found")
        return Outcome(200 if found else 404, body)

    def _id_page(
        self, index: str, body: dict[str, Any], found: list[tuple[str, dict[str, Any]]], size: int
    ) -> Outcome:
        sort = body.get("sort") or []
        if sort and sort != [{"_id": "asc"}] and sort != [{"_id": {"order": "asc"}}]:
            raise ApiError(400, "illegal_argument_exception",
                           f"the emulator sorts on _id ascending only, not {sort}")  # fmt: skip
        rows = sorted(found) if sort else found
        after = body.get("search_after")
        if after is not None:
            rows = [(d, s) for d, s in rows if d > str(after[0])]
        page = _hits(index, rows[:size])
        for hit in page["hits"]["hits"]:
            if sort:
                hit["sort"] = [hit["_id"]]
            if body.get("_source") is False:
                del hit["_source"]
        return Outcome(200, page)

    def _auto_create(self, name: str) -> IndexState:
        state = IndexState(
            {"index.number_of_shards": "1", "index.number_of_replicas": "1"}, {"properties": {}}
        )
        self.indices[name] = state
        return state

    def _tasks_cancel(self, r: Request, task_id: str) -> Outcome:
        task = self.reindex_tasks.get(task_id)
        if task is None or task["completed"]:
            raise ApiError(404, "resource_not_found_exception", f"task [{task_id}] is not found")
        task["canceled"] = "by user request"
        task["pending"] = []
        task["completed"] = True
        node, number = task_id.split(":")
        info = {
            "node": node, "id": int(number), "type": "transport",
            "action": "indices:data/write/reindex", "cancellable": True, "cancelled": True,
            "headers": {}, "start_time_in_millis": int(task["started"] * 1000),
            "running_time_in_nanos": int((time.time() - task["started"]) * 1e9),
            "description": f"reindex from [{task['source']}] to [{task['dest']}]",
        }  # fmt: skip
        node_info = {"name": node, "transport_address": "127.0.0.1:9300", "host": "127.0.0.1",
                     "ip": "127.0.0.1:9300", "roles": ["data", "ingest"],
                     "tasks": {task_id: info}}  # fmt: skip
        return Outcome(200, {"nodes": {node: node_info}})

    # -- search pipelines (the hybrid search resource; the evaluation tool)
    #
    # neural-search 3.7.0.0 builds a normalization-processor in
    # processor/factory/NormalizationProcessorFactory.java:52-86 (processor/ paths here
    # are under src/main/java/org/opensearch/neuralsearch/).
    # Store, get and delete are OpenSearch core (SearchPipelineService): core
    # class names only, no tag and line (the core repository is not mirrored).

    def _pipeline_put(self, r: Request, pid: str) -> Outcome:
        body = r.body if isinstance(r.body, dict) else {}
        for processor in body.get("phase_results_processors") or []:
            config = processor.get(NORMALIZATION_PROCESSOR)
            if config is None:
                # Not a server rule: the emulator implements no other processor.
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"the emulator supports only {NORMALIZATION_PROCESSOR}, not {list(processor)}",
                )
            _check_normalization_processor(config)
        self.pipelines[pid] = body
        return Outcome(200, {"acknowledged": True})

    def _pipeline_get(self, r: Request, pid: str) -> Outcome:
        # Inferred, not read: a missing id answers 404 with an empty object
        # (RestGetSearchPipelineAction replies through RestStatusToXContentListener; the
        # response's status() for an empty result was not read). Our code only PUTs/DELETEs.
        if pid not in self.pipelines:
            return Outcome(404, {})
        return Outcome(200, {pid: self.pipelines[pid]})

    def _pipeline_delete(self, r: Request, pid: str) -> Outcome:
        # SearchPipelineService.innerDelete matches the id as a wildcard pattern
        # (Regex.simpleMatch): "documents-*" deletes every pipeline it matches,
        # and no match is 404 "pipeline [id] is missing".
        doomed = [name for name in self.pipelines if fnmatch.fnmatchcase(name, pid)]
        if not doomed:
            raise ApiError(404, "resource_not_found_exception", f"pipeline [{pid}] is missing")
        for name in doomed:
            del self.pipelines[name]
        return Outcome(200, {"acknowledged": True})


NORMALIZATION_PROCESSOR = "normalization-processor"  # processor/NormalizationProcessor.java:44
# processor/normalization/ScoreNormalizationFactory.java:38-59: the combinations that each
# normalization accepts
# (technique names: the TECHNIQUE_NAME constants of processor/{normalization,combination}/).
NORMALIZATION_COMBINATIONS = {
    "min_max": {"arithmetic_mean", "geometric_mean", "harmonic_mean"},
    "l2": {"arithmetic_mean", "geometric_mean", "harmonic_mean"},
    "rrf": {"arithmetic_mean", "geometric_mean", "harmonic_mean"},
    "z_score": {"arithmetic_mean"},
}
# processor/combination/ScoreCombinationFactory.java:22-30
COMBINATIONS = {"arithmetic_mean", "geometric_mean", "harmonic_mean", "rrf"}


def _check_normalization_processor(config: dict[str, Any]) -> None:
    """What NormalizationProcessorFactory.create refuses, with neural-search's own messages."""
    bad = "illegal_argument_exception"
    normalization = (config.get("normalization") or {}).get("technique", "min_max")
    if normalization not in NORMALIZATION_COMBINATIONS:
        # processor/normalization/ScoreNormalizationFactory.java:72
        raise ApiError(400, bad, "provided normalization technique is not supported")
    combination = config.get("combination") or {}
    technique = combination.get("technique", "arithmetic_mean")
    if technique not in COMBINATIONS:
        # processor/combination/ScoreCombinationFactory.java:50
        raise ApiError(400, bad, "provided combination technique is not supported")
    params = combination.get("parameters") or {}
    if "weights" in params:
        weights = params["weights"]
        # processor/combination/ScoreCombinationUtil.java:73-78
        if not isinstance(weights, list) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights
        ):
            raise ApiError(400, bad, "parameter [weights] must be a collection of numbers")
        # processor/combination/ScoreCombinationUtil.java:120-139: each in [0, 1], sum 1 within 0.01
        if any(not 0.0 <= w <= 1.0 for w in weights):
            raise ApiError(
                400,
                bad,
                f"all weights must be in range [0.0 ... 1.0], submitted weights: {weights}",
            )
        if abs(sum(weights) - 1.0) > 0.01:
            raise ApiError(
                400,
                bad,
                "sum of weights for combination must be equal to 1.0, "
                f"submitted weights: {weights}",
            )
    if technique not in NORMALIZATION_COMBINATIONS[normalization]:
        # processor/normalization/ScoreNormalizationFactory.java:80-93
        supported = ", ".join(sorted(NORMALIZATION_COMBINATIONS[normalization]))
        raise ApiError(
            400,
            bad,
            f"provided combination technique {technique} is not supported for normalization "
            f"technique {normalization}. Supported techniques are: {supported}",
        )


def _json_patch(document: Any, op: dict[str, Any]) -> Any:
    """RFC 6902 add/replace/remove on JSON-pointer paths (what zjsonpatch does for the plugin)."""
    parts = [
        p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]
    ]
    if not parts:
        raise _sec_error(400, "Error in JSON patch: empty path")
    parent = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
        if parent is None:
            # zjsonpatch evaluates the parent pointer first (InPlaceApplyProcessor.set);
            # the plugin answers its JsonPatchApplicationException as a 400 with the
            # library's message (AbstractApiAction.java:297-305).
            raise _sec_error(400, f'[{str(op.get("op")).upper()} Operation] Missing field "{part}"')
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        if kind == "add":
            position = len(parent) if last == "-" else int(last)
            parent.insert(position, op.get("value"))
        elif not last.isdigit() or int(last) >= len(parent):
            raise _sec_error(400, f"Error in JSON patch: no such path {op['path']}")
        elif kind == "remove":
            parent.pop(int(last))
        else:
            parent[int(last)] = op.get("value")
    elif kind == "remove" or kind == "replace":
        if last not in parent:
            raise _sec_error(400, f"Error in JSON patch: no such path {op['path']}")
        if kind == "remove":
            del parent[last]
        else:
            parent[last] = op.get("value")
    else:
        parent[last] = op.get("value")
    return document


# ----------------------------------------------------------------------------- semantic chunking
#
# The semantic field's ``chunking`` parameter, its stored layout and how a ``neural``
# query reads it, as neural-search 3.7.0.0 does (paths under
# src/main/java/org/opensearch/neuralsearch/):
# * mapping: mapper/SemanticFieldMapper.java:147-152 (not updatable: ``false``),
#   mapper/dto/ChunkingConfig.java:50-71 (a boolean or a list of maps) and :97-137
#   (each map: only ``algorithm`` and ``parameters``; the algorithm is required and
#   known; ``parameters`` a map, validated by the algorithm's validator),
#   processor/chunker/ChunkerValidatorFactory.java:16-23, Chunker.java:80-96,
#   FixedTokenLengthChunker.java:180-215, DelimiterChunker.java:102-105,
#   FixedCharLengthChunker.java:129-149, ChunkerParameterParser.java:29-169 (values are
#   read through toString(), so "384" passes as an integer). The exception types are
#   the ones thrown; that the REST answer carries them as ``mapper_parsing_exception``
#   is inferred (core wraps mapping failures).
# * layout: mappingtransformer/SemanticInfoConfigBuilder.java:103-113 (a nested
#   ``chunks`` with ``text`` and ``embedding``); processor/semantic/
#   SemanticFieldProcessor.java:424-473 (chunk, then one embedding per chunk, :375-405)
#   and processor/dto/SemanticFieldInfo.java:88-128 (``chunks.<i>.embedding``);
#   without a chunker list the default one, fixed_token_length with its defaults
#   (processor/factory/SemanticFieldProcessorFactory.java:143-147).
# * query: query/NeuralQueryBuilder.java:1028-1037 and :786-787: on a chunked field a
#   ``neural`` query is a nested k-NN query on ``chunks`` with ScoreMode.Max, so a hit
#   is the document, scored by its best chunk.
# Approximations (not server rules): the ``standard`` tokenizer (and every other word
# tokenizer) is ``\w+`` here, and index.analyze.max_token_count is not enforced.

CHUNK_ALGORITHMS = ("fixed_token_length", "delimiter", "fixed_char_length")  # ChunkerFactory:21-31
# FixedTokenLengthChunker.java:56-64
WORD_TOKENIZERS = (
    "standard",
    "letter",
    "lowercase",
    "whitespace",
    "uax_url_email",
    "classic",
    "thai",
)


def _java_string(value: Any) -> str:
    """What Java's toString() gives for a parsed JSON value (ChunkerParameterParser reads that)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _chunk_int(params: dict[str, Any], name: str, default: int) -> int:
    """ChunkerParameterParser.parseIntegerWithDefault (NumberUtils.createInteger)."""
    if name not in params:
        return default
    text = _java_string(params[name])
    if not re.fullmatch(r"[+-]?[0-9]+", text) or not -(2**31) <= int(text) < 2**31:
        raise ApiError(
            400, "mapper_parsing_exception", f"Parameter [{name}] must be of java.lang.Integer type"
        )
    return int(text)


def _chunk_positive(params: dict[str, Any], name: str, default: int) -> int:
    value = _chunk_int(params, name, default)
    if value <= 0:
        raise ApiError(400, "mapper_parsing_exception", f"Parameter [{name}] must be positive.")
    return value


def _chunk_double(params: dict[str, Any], name: str, default: float) -> float:
    if name not in params:
        return default
    try:
        return float(_java_string(params[name]))
    except ValueError:
        raise ApiError(
            400, "mapper_parsing_exception", f"Parameter [{name}] must be of java.lang.Double type"
        ) from None


def _chunk_string(params: dict[str, Any], name: str, default: str) -> str:
    if name not in params:
        return default
    value = params[name]
    if not isinstance(value, str):
        raise ApiError(
            400, "mapper_parsing_exception", f"Parameter [{name}] must be of java.lang.String type"
        )
    if not value:
        raise ApiError(400, "mapper_parsing_exception", f"Parameter [{name}] should not be empty.")
    return value


@dataclass(frozen=True)
class Chunker:
    """One parsed chunking step (the server's Chunker subclasses, parse())."""

    algorithm: str
    max_chunk_limit: int = 100  # Chunker.java:27-28
    token_limit: int = 384  # FixedTokenLengthChunker.java:49
    char_limit: int = 2048  # FixedCharLengthChunker.java:35
    overlap_rate: float = 0.0
    tokenizer: str = "standard"
    delimiter: str = "\n\n"  # DelimiterChunker.java:30

    @classmethod
    def parse(cls, algorithm: str, params: dict[str, Any]) -> Chunker:
        limit = _chunk_int(params, "max_chunk_limit", 100)
        if limit <= 0 and limit != -1:  # Chunker.validateMaxChunkLimit
            raise ApiError(
                400,
                "mapper_parsing_exception",
                "Parameter [max_chunk_limit] must be positive or -1 to disable this parameter",
            )
        if algorithm == "delimiter":
            return cls(algorithm, limit, delimiter=_chunk_string(params, "delimiter", "\n\n"))
        overlap = _chunk_double(params, "overlap_rate", 0.0)
        if algorithm == "fixed_char_length":
            char_limit = _chunk_positive(params, "char_limit", 2048)
            if not 0.0 <= overlap <= 0.5:
                raise ApiError(
                    400,
                    "mapper_parsing_exception",
                    f"Parameter [overlap_rate] must be between 0.0 and 0.5, but was {overlap}",
                )
            return cls(algorithm, limit, char_limit=char_limit, overlap_rate=overlap)
        token_limit = _chunk_positive(params, "token_limit", 384)
        tokenizer = _chunk_string(params, "tokenizer", "standard")
        if not 0.0 <= overlap <= 0.5:
            raise ApiError(
                400,
                "mapper_parsing_exception",
                "Parameter [overlap_rate] must be between 0.0 and 0.5",
            )
        if tokenizer not in WORD_TOKENIZERS:
            raise ApiError(
                400,
                "mapper_parsing_exception",
                f"Tokenizer [{tokenizer}] is not supported for [fixed_token_length] "
                f"algorithm. Supported tokenizers are [{', '.join(WORD_TOKENIZERS)}]",
            )
        return cls(
            algorithm, limit, token_limit=token_limit, overlap_rate=overlap, tokenizer=tokenizer
        )

    def chunk(self, content: str, runtime: dict[str, int]) -> list[str]:
        """chunk() of the algorithm, with the runtime limit of Chunker.checkRunTimeMaxChunkLimit."""
        limit, count = runtime["max_chunk_limit"], runtime["chunk_string_count"]

        def full(size: int) -> bool:
            return limit != -1 and size + count >= limit

        result: list[str] = []
        if self.algorithm == "delimiter":  # DelimiterChunker.java:66-90
            start, found = 0, content.find(self.delimiter)
            while found != -1:
                if full(len(result)):
                    break
                end = found + len(self.delimiter)
                result.append(content[start:end])
                start, found = end, content.find(self.delimiter, end)
            if start < len(content):
                result.append(content[start:])
            return result
        if self.algorithm == "fixed_char_length":  # FixedCharLengthChunker.java:84-117
            step = self.char_limit - math.floor(self.char_limit * self.overlap_rate)
            start = 0
            while start < len(content):
                if full(len(result)):
                    result.append(content[start:])
                    break
                if start + self.char_limit >= len(content):
                    result.append(content[start:])
                    break
                result.append(content[start : start + self.char_limit])
                start += step
            return result
        # FixedTokenLengthChunker.java:119-156
        offsets = [m.start() for m in re.finditer(r"\w+", content)]
        overlap = math.floor(self.token_limit * self.overlap_rate)
        index = 0
        while index < len(offsets):
            begin = 0 if index == 0 else offsets[index]
            if full(len(result)):
                result.append(content[begin:])
                break
            if index + self.token_limit >= len(offsets):
                result.append(content[begin:])
                break
            result.append(content[begin : offsets[index + self.token_limit]])
            index += self.token_limit - overlap
        return result


def parse_chunking(value: Any) -> list[Chunker] | None:
    """The field's ``chunking`` as ChunkingConfig reads it: None (off) or the chunkers to run."""
    if value is None or value is False:
        return None
    if value is True:
        return [Chunker("fixed_token_length")]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ApiError(
            400, "mapper_parsing_exception", "[chunking] must be either a List of Maps or a Boolean"
        )
    chunkers = []
    for item in value:
        extra = set(item) - {"algorithm", "parameters"}
        if extra:
            raise ApiError(
                400,
                "mapper_parsing_exception",
                f"[chunking] does not support parameters [{', '.join(sorted(extra))}]",
            )
        if "algorithm" not in item:
            raise ApiError(
                400,
                "mapper_parsing_exception",
                "[algorithm] is required to configure the chunking strategy.",
            )
        algorithm = item["algorithm"]
        if not isinstance(algorithm, str) or algorithm not in CHUNK_ALGORITHMS:
            raise ApiError(
                400,
                "mapper_parsing_exception",
                f"[algorithm] must be [{', '.join(CHUNK_ALGORITHMS)}]",
            )
        params = item.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ApiError(
                400, "mapper_parsing_exception", "parameters in chunking should be a Map."
            )
        chunkers.append(Chunker.parse(algorithm, params or {}))
    # An empty list is enabled with no chunkers: the default one runs
    # (SemanticFieldInfo.java:138-158, SemanticFieldProcessor.java:431-433).
    return chunkers or [Chunker("fixed_token_length")]


def chunk_text(text: str, chunkers: list[Chunker]) -> list[str]:
    """SemanticFieldProcessor.executeChunkers with ChunkUtils.chunkString/chunkList (:31-70)."""
    chunks: list[str] | None = None
    for chunker in chunkers:
        runtime = {
            "chunk_string_count": 1 if chunks is None else len(chunks),
            "max_chunk_limit": chunker.max_chunk_limit,
        }
        out: list[str] = []
        for content in [text] if chunks is None else chunks:
            if not content:
                continue
            pieces = chunker.chunk(content, runtime)
            runtime["chunk_string_count"] -= 1
            if runtime["max_chunk_limit"] != -1:
                runtime["max_chunk_limit"] -= len(pieces)
            out.extend(pieces)
        chunks = out
    return chunks or []


def chunked_layout(embedding: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """SemanticInfoConfigBuilder.java:103-110: ``chunks`` (nested: text, embedding) and model."""
    return {
        "properties": {
            "chunks": {
                "type": "nested",
                "properties": {"text": {"type": "text"}, "embedding": embedding},
            },
            "model": model,
        }
    }


def _embedding_mapping(info_mapping: dict[str, Any]) -> dict[str, Any]:
    """The ``embedding`` mapping of a ``<field>_semantic_info``, chunked or not."""
    properties = info_mapping["properties"]
    if "chunks" in properties:
        return properties["chunks"]["properties"]["embedding"]
    return properties["embedding"]


def semantic_vectors(info: Any) -> list[list[float]]:
    """Every stored vector of a ``<field>_semantic_info`` value, in either layout."""
    if not isinstance(info, dict):
        return []
    if "chunks" in info:
        return [c["embedding"] for c in info.get("chunks") or [] if c.get("embedding")]
    return [info["embedding"]] if info.get("embedding") else []


# -------------------------------------------------------------------- default search pipeline
#
# ``index.search.default_pipeline`` (OpenSearch core IndexSettings.DEFAULT_SEARCH_PIPELINE,
# dynamic; neural-search 3.7.0.0 updates it on a live index in
# src/test/java/org/opensearch/neuralsearch/grpc/HybridQueryGrpcIT.java:477 and removes it
# with a null at :496). Core SearchPipelineService resolves the pipeline of a search: the
# ``search_pipeline`` parameter, else the index's default, "_none" meaning none (core
# class names only: not mirrored). That a search naming a missing pipeline fails, and
# that a default pointing at a deleted one fails every search of the index, is inferred
# from the same resolution (and answered like ``?search_pipeline=`` below). Its
# normalization processor leaves every query that is not ``hybrid`` untouched
# (neural-search processor/NormalizationProcessor.java:76-79, 127-134).


def search_pipeline_of(emulator: OpenSearchEmulator, r: Request, index: str) -> str | None:
    """The pipeline a search of concrete ``index`` runs through, or None."""
    pipeline = r.query.get("search_pipeline")
    if pipeline is None:
        pipeline = emulator.indices[index].settings.get("index.search.default_pipeline")
    if pipeline in (None, "_none"):
        return None
    if pipeline not in emulator.pipelines:
        raise ApiError(404, "resource_not_found_exception", f"Pipeline {pipeline} is not defined")
    return pipeline


# ----------------------------------------------------------------------------- HTTP


# -- issue 12, capacity-aware settings: what the server checks in client_config and in
# index.neural_search.semantic_ingest_batch_size (stacks/ingest_capacity.py sets both).
#
# client_config: ml-commons 3.7.0.0 common/src/main/java/org/opensearch/ml/common/
# connector/ConnectorClientConfig.java:162-218 (parse, reached from
# transport/connector/MLCreateConnectorInput.java:219-220 for create and update) starts
# every field at its default (:41-48), reads the known fields and skips any other
# (:202-204); it validates no range. retry_backoff_policy goes through
# RetryBackoffPolicy.java:15-21 (case-insensitive enum name, else "Unsupported retry
# backoff policy"); the integers through XContentParser.intValue (core, class name
# only: JSON numbers, and numeric strings by coercion). GET shows the parsed object,
# every field included (toXContent :127-155, the policy in lower case :149). An update
# that carries client_config replaces it whole (HttpConnector.java:371-372).

CLIENT_CONFIG_DEFAULTS: dict[str, Any] = {  # ConnectorClientConfig.java:41-48
    "max_connection": 30,
    "connection_timeout": 30,
    "read_timeout": 30,
    "retry_backoff_millis": 200,
    "retry_timeout_seconds": 30,
    "max_retry_times": 0,
    "retry_backoff_policy": "constant",
    "skip_ssl_verification": False,
}
RETRY_BACKOFF_POLICIES = ("constant", "exponential_equal_jitter", "exponential_full_jitter")


def _parse_client_config(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        # ensureExpectedToken(START_OBJECT) at ConnectorClientConfig.java:172.
        reason = "Failed to parse object: expecting token of type [START_OBJECT]"
        raise ApiError(400, "parsing_exception", reason)
    parsed = dict(CLIENT_CONFIG_DEFAULTS)
    for key, value in raw.items():
        if key not in CLIENT_CONFIG_DEFAULTS:
            continue  # skipChildren
        if key == "retry_backoff_policy":
            policy = str(value).lower()
            if policy not in RETRY_BACKOFF_POLICIES:
                raise ApiError(400, "illegal_argument_exception",
                               "Unsupported retry backoff policy")  # fmt: skip
            parsed[key] = policy
        elif key == "skip_ssl_verification":
            if not isinstance(value, bool):
                raise ApiError(400, "illegal_argument_exception",
                               f"Failed to parse [{key}]: not a boolean")  # fmt: skip
            parsed[key] = value
        else:
            integral = isinstance(value, int) and not isinstance(value, bool)
            if not integral and not (isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value)):
                raise ApiError(400, "illegal_argument_exception",
                               f"Failed to parse [{key}]: {value!r} is not an integer")  # fmt: skip
            parsed[key] = int(value)
    return parsed


def _with_parsed_client_config(body: dict[str, Any]) -> dict[str, Any]:
    if "client_config" not in body:
        return body
    return {**body, "client_config": _parse_client_config(body["client_config"])}


# index.neural_search.semantic_ingest_batch_size: neural-search 3.7.0.0 src/main/java/org/
# opensearch/neuralsearch/settings/NeuralSearchSettings.java:63-70, Setting.intSetting(key,
# 10, 1, 100, IndexScope, Dynamic), registered at plugin/NeuralSearch.java:364 (so PUT
# _settings may change it on an open index). The messages are core Setting.parseInt's
# (class name only): "Failed to parse value [v] for setting [k] must be >= 1" / "<= 100".
# The system ingest pipeline that reads it (SemanticFieldProcessorFactory.java:115-120) is
# cached per index and dropped when the index's metadata changes (core IngestService,
# SystemIngestPipelineCache; class names only), so an update applies to the next bulk.
SEMANTIC_INGEST_BATCH_SIZE = "index.neural_search.semantic_ingest_batch_size"


def _check_plugin_index_settings(flat: dict[str, Any]) -> None:
    if SEMANTIC_INGEST_BATCH_SIZE not in flat:
        return
    value = str(flat[SEMANTIC_INGEST_BATCH_SIZE])
    reason = f"Failed to parse value [{value}] for setting [{SEMANTIC_INGEST_BATCH_SIZE}]"
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise ApiError(400, "illegal_argument_exception", reason)
    if int(value) < 1:
        raise ApiError(400, "illegal_argument_exception", reason + " must be >= 1")
    if int(value) > 100:
        raise ApiError(400, "illegal_argument_exception", reason + " must be <= 100")


class _Pooled:
    """Connections one bulk request's predicts got (issue 12 capacity section)."""

    refusal = (500, "status_exception", OpenSearchEmulator.ACQUIRE_REFUSAL)

    def __init__(
        self, owner: OpenSearchEmulator | None, granted: int, held: list[threading.Semaphore]
    ) -> None:
        self.owner, self.granted, self.held = owner, granted, held

    def take(self) -> bool:
        """True while this bulk still has a connection for its next sub-batch's predict."""
        if self.owner is None:
            return True
        self.granted -= 1
        return self.granted >= 0

    def release(self) -> None:
        for pool in self.held:
            pool.release()
        if self.owner is not None:
            with self.owner.lock:
                self.owner.pool_in_use -= len(self.held)
        self.held = []


class _Handler(BaseHTTPRequestHandler):
    owner: OpenSearchEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def _serve(self) -> None:
        emulator = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query = dict(parse_qsl(split.query))
        method = self.command
        route, _ = emulator.route_for(method, path)
        parse_body = route.parse_body if route is not None else None
        body: Any = None
        if parse_body is None:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                error = {"type": "parsing_exception", "reason": "invalid JSON"}
                self._send(400, {"error": error, "status": 400})
                return
        principal = "anonymous"
        validate = True
        fault = None
        try:
            principal = emulator.authenticate(method, self.path, headers, raw)
            fault = emulator.faults.take(principal, method, path)
            if parse_body is not None and (fault is None or fault.after_processing):
                body = parse_body(raw, headers)
            if fault is not None and fault.after_processing:
                if emulator.validator is not None:
                    emulator.validator.validate_request(method, path, query or None, body)
                emulator.handle(Request(principal, method, path, query, body))
            if fault is not None:
                with emulator.lock:
                    emulator.log.append((principal, method, path, fault.status))
                if fault.drop_connection:
                    self.close_connection = True
                    return
                outcome = Outcome(fault.status, fault.body, validate=False)
            else:
                if emulator.validator is not None:
                    emulator.validator.validate_request(method, path, query or None, body)
                outcome = emulator.handle(Request(principal, method, path, query, body))
        except ApiError as error:
            outcome = Outcome(error.status, error.body(), validate=error.error_type not in (
                "MissingAuthenticationToken", "InvalidSignatureException",
                "UnrecognizedClientException", "AccessDenied"))  # fmt: skip
        except AssertionError as violation:  # SpecViolation: the test must fail loudly
            emulator.violations.append(violation)
            self._send(
                500, {"error": {"type": "spec_violation", "reason": str(violation)}, "status": 500}
            )
            return
        if fault is None:
            for hook in list(emulator.after_request):
                hook(method, path, outcome.status)
        if validate and outcome.validate and emulator.validator is not None:
            try:
                emulator.validator.validate_response(method, path, outcome.status, outcome.body)
            except AssertionError as violation:
                emulator.violations.append(violation)
        if fault is None:
            with emulator.lock:
                emulator.log.append((principal, method, path, outcome.status))
        self._send(outcome.status, outcome.body, head=method == "HEAD")

    def _send(self, status: int, body: Any, head: bool = False) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(0 if head else len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve


def iter_calls(
    emulator: OpenSearchEmulator, method: str, prefix: str
) -> Iterator[tuple[str, str, str, int]]:
    """The logged calls with ``method`` whose path starts with ``prefix``."""
    for call in emulator.calls():
        if call[1] == method and call[2].startswith(prefix):
            yield call
