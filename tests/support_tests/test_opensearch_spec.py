"""Tests of the OpenSearch specification checker (tests/support/opensearch_spec.py).

Why so many cases: the handlers' contract tests trust this checker to reject
what OpenSearch would reject.  Each request the handlers will send is shown
to pass in its correct form and to fail when broken in a realistic way (wrong
type, misspelt key, missing required field, unknown path, unknown query
parameter), and the response shapes an emulator must produce are pinned the
same way.  Where the specification disagrees with the server or DESIGN.md,
a test names the disagreement so that nobody rediscovers it the hard way.
"""

from __future__ import annotations

import copy
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.domain_fixtures import e5_model_config
from tests.support.opensearch_spec import (
    SHARED_SPEC,
    SPEC_ENV_VAR,
    SUPPLEMENTS,
    VENDORED_SPEC,
    OpenSearchSpec,
    SpecViolation,
    validate_exchange,
)

MODEL_ID = "vQ9Q3ZUBbn4fJk0dkP0r"
CONNECTOR_ID = "uw9Q3ZUBbn4fJk0dVf3x"
TASK_ID = "wA9Q3ZUBbn4fJk0dlP3l"
INDEX = "semantic-search-dev"
ROLE_ARN = "arn:aws:iam::123456789012:role/semantic-search-dev-connector"
LAMBDA_ROLE_ARN = "arn:aws:iam::123456789012:role/semantic-search-dev-setup"


@pytest.fixture(scope="module")
def spec() -> OpenSearchSpec:
    return OpenSearchSpec.load()


@pytest.fixture(scope="module")
def bare_spec() -> OpenSearchSpec:
    """The specification exactly as published, without this project's supplements."""
    return OpenSearchSpec.load(supplements=False)


# --------------------------------------------------------------------------- bodies


def connector_body() -> dict[str, Any]:
    """The SageMaker connector of DESIGN.md, as the connector handler will send it."""
    return {
        "name": "semantic-search-dev-e5",
        "description": "multilingual-e5-small on SageMaker",
        "version": 1,
        "protocol": "aws_sigv4",
        "parameters": {"region": "eu-west-1", "service_name": "sagemaker"},
        "credential": {"roleArn": ROLE_ARN},
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/e5-dev/invocations",
                "headers": {"content-type": "application/json"},
                "request_body": (
                    '{ "texts": ${parameters.texts}, "content_type": "${parameters.content_type}" }'
                ),
            }
        ],
        "client_config": {
            "max_connection": 20,
            "connection_timeout": 30000,
            "read_timeout": 30000,
            "max_retry_times": 5,
            "retry_backoff_policy": "exponential_full_jitter",
            "retry_backoff_millis": 200,
        },
    }


def register_body() -> dict[str, Any]:
    """The asymmetric remote model registration of DESIGN.md."""
    return {
        "name": "semantic-search-dev-e5",
        "function_name": "remote",
        "description": "asymmetric E5 through SageMaker",
        "connector_id": CONNECTOR_ID,
        "model_config": e5_model_config(),
    }


def index_body() -> dict[str, Any]:
    return {
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 1}},
        "mappings": {
            "properties": {
                "id": {"type": "keyword"},
                "passage_text": {"type": "semantic", "model_id": MODEL_ID},
            }
        },
    }


def neural_search_body() -> dict[str, Any]:
    return {
        "_source": {"excludes": ["passage_text_semantic_info"]},
        "size": 10,
        "query": {"neural": {"passage_text": {"query_text": "What is OpenSearch?"}}},
    }


def find_by_name_body() -> dict[str, Any]:
    return {"query": {"term": {"name.keyword": {"value": "semantic-search-dev-e5"}}}, "size": 10}


SHARDS = {"total": 2, "successful": 1, "failed": 0}


def write_response(index: str, doc_id: str, result: str) -> dict[str, Any]:
    return {
        "_index": index,
        "_id": doc_id,
        "_version": 1,
        "result": result,
        "_shards": SHARDS,
        "_seq_no": 0,
        "_primary_term": 1,
    }


def model_response(state: str = "DEPLOYED") -> dict[str, Any]:
    """What GET /_plugins/_ml/models/{id} returns for our remote model (3.x)."""
    body = register_body()
    return {
        "name": body["name"],
        "algorithm": "REMOTE",
        "model_version": "1",
        "description": body["description"],
        "model_state": state,
        "model_config": body["model_config"],
        "created_time": 1_760_000_000_000,
        "last_updated_time": 1_760_000_000_500,
        "last_registered_time": 1_760_000_000_100,
        "connector_id": CONNECTOR_ID,
        "model_group_id": "xg9Q3ZUBbn4fJk0dVf7z",
        "is_hidden": False,
    }


def search_hits(source: dict[str, Any], index: str) -> dict[str, Any]:
    return {
        "took": 3,
        "timed_out": False,
        "_shards": {**SHARDS, "skipped": 0},
        "hits": {
            "total": {"value": 1, "relation": "eq"},
            "max_score": 1.0,
            "hits": [{"_index": index, "_id": "x1", "_score": 1.0, "_source": source}],
        },
    }


# --------------------------------------------------------------------------- valid requests

# (method, path, query, body) for every request the handlers, the smoke test and
# the evaluation tool are expected to send.
VALID_REQUESTS: list[tuple[str, str, dict[str, Any] | None, Any]] = [
    ("GET", "/", None, None),
    ("GET", "/_cluster/health", {"wait_for_status": "yellow", "timeout": "30s"}, None),
    ("POST", "/_plugins/_ml/connectors/_create", None, connector_body()),
    ("POST", "/_plugins/_ml/connectors/_search", None, find_by_name_body()),
    ("GET", f"/_plugins/_ml/connectors/{CONNECTOR_ID}", None, None),
    (
        "PUT",
        f"/_plugins/_ml/connectors/{CONNECTOR_ID}",
        None,
        {"description": "new", "client_config": {"max_connection": 40, "max_retry_times": 8}},
    ),
    ("DELETE", f"/_plugins/_ml/connectors/{CONNECTOR_ID}", None, None),
    ("POST", "/_plugins/_ml/models/_register", None, register_body()),
    ("POST", "/_plugins/_ml/models/_search", None, find_by_name_body()),
    ("GET", f"/_plugins/_ml/models/{MODEL_ID}", None, None),
    ("POST", f"/_plugins/_ml/models/{MODEL_ID}/_deploy", None, None),
    ("POST", f"/_plugins/_ml/models/{MODEL_ID}/_undeploy", None, None),
    ("DELETE", f"/_plugins/_ml/models/{MODEL_ID}", None, None),
    ("PUT", f"/_plugins/_ml/models/{MODEL_ID}", None, {"description": "updated", "name": "n"}),
    ("GET", f"/_plugins/_ml/tasks/{TASK_ID}", None, None),
    (
        "POST",
        f"/_plugins/_ml/models/{MODEL_ID}/_predict",
        None,
        {"parameters": {"texts": ["What is OpenSearch?"], "content_type": "query"}},
    ),
    (
        "POST",
        f"/_plugins/_ml/_predict/text_embedding/{MODEL_ID}",
        None,
        {"text_docs": ["What is OpenSearch?"], "parameters": {"content_type": "QUERY"}},
    ),
    ("PUT", f"/{INDEX}", {"wait_for_active_shards": 1, "timeout": "30s"}, index_body()),
    ("GET", f"/{INDEX}", None, None),
    ("HEAD", f"/{INDEX}", None, None),
    ("DELETE", f"/{INDEX}", {"ignore_unavailable": True}, None),
    (
        "PUT",
        f"/{INDEX}/_mapping",
        None,
        {"properties": {"passage_text": {"type": "semantic", "model_id": "m2"}}},
    ),
    ("PUT", f"/{INDEX}/_doc/1", {"refresh": "wait_for"}, {"passage_text": "OpenSearch is..."}),
    ("POST", f"/{INDEX}/_search", None, neural_search_body()),
    ("DELETE", f"/{INDEX}/_doc/1", {"refresh": True}, None),
    (
        "POST",
        "/_bulk",
        {"refresh": "true"},
        json.dumps({"index": {"_index": INDEX, "_id": "1"}}) + '\n{"passage_text": "a"}\n',
    ),
    ("POST", f"/{INDEX}/_refresh", None, None),
    ("GET", f"/{INDEX}/_count", None, None),
    ("GET", "/_plugins/_security/api/rolesmapping/ml_full_access", None, None),
    (
        "PUT",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        None,
        {"backend_roles": [LAMBDA_ROLE_ARN], "hosts": [], "users": []},
    ),
    (
        "PATCH",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        None,
        [{"op": "add", "path": "/backend_roles/-", "value": LAMBDA_ROLE_ARN}],
    ),
    ("DELETE", "/_plugins/_security/api/rolesmapping/semantic-search-dev-index", None, None),
    ("GET", "/_plugins/_security/api/roles/semantic-search-dev-index", None, None),
    (
        "PUT",
        "/_plugins/_security/api/roles/semantic-search-dev-index",
        None,
        {
            "cluster_permissions": ["cluster_monitor"],
            "index_permissions": [
                {"index_patterns": [INDEX], "allowed_actions": ["indices_all"]},
            ],
        },
    ),
    ("DELETE", "/_plugins/_security/api/roles/semantic-search-dev-index", None, None),
]

EXPECTED_GROUPS = {
    ("GET", "/"): "info",
    ("POST", "/_plugins/_ml/models/_register"): "ml.register_model",
    ("POST", f"/_plugins/_ml/models/{MODEL_ID}/_predict"): "ml.predict_model",
    ("POST", f"/_plugins/_ml/_predict/text_embedding/{MODEL_ID}"): "ml.predict",
    ("PUT", f"/{INDEX}"): "indices.create",
    ("HEAD", f"/{INDEX}"): "indices.exists",
    ("POST", "/_plugins/_ml/connectors/_search"): "ml.search_connectors",
    ("PATCH", "/_plugins/_security/api/rolesmapping/ml_full_access"): "security.patch_role_mapping",
}


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    VALID_REQUESTS,
    ids=[f"{m} {p}" for m, p, _, _ in VALID_REQUESTS],
)
def test_valid_requests_pass(
    spec: OpenSearchSpec, method: str, path: str, query: dict[str, Any] | None, body: Any
) -> None:
    operation = spec.validate_request(method, path, query, body)
    assert operation.method == method
    expected = EXPECTED_GROUPS.get((method, path))
    if expected:
        assert operation.group == expected


def test_path_templates_and_parameters_are_reported(spec: OpenSearchSpec) -> None:
    op = spec.validate_request("POST", f"/_plugins/_ml/models/{MODEL_ID}/_deploy")
    assert op.template == "/_plugins/_ml/models/{model_id}/_deploy"
    assert op.path_params == {"model_id": MODEL_ID}
    op = spec.find_operation("GET", "/my%2Dindex/_doc/a%2Fb")
    assert op.template == "/{index}/_doc/{id}"
    assert op.path_params == {"index": "my-index", "id": "a/b"}


def test_literal_segments_beat_parameters(spec: OpenSearchSpec) -> None:
    # "_search" and "_register" are literal templates, not a model id.
    assert spec.find_operation("POST", "/_plugins/_ml/models/_search").group == "ml.search_models"
    assert spec.find_operation("GET", "/_plugins/_ml/models/abc").group == "ml.get_model"
    # /_cluster/health is not "GET /{index}/{something}".
    assert spec.find_operation("GET", "/_cluster/health").template == "/_cluster/health"
    assert spec.find_operation("GET", "/_count").template == "/_count"


def test_full_urls_and_query_strings_are_understood(spec: OpenSearchSpec) -> None:
    op = spec.validate_request(
        "GET", "https://search-x.eu-west-1.es.amazonaws.com/_cluster/health?wait_for_status=green"
    )
    assert op.group == "cluster.health"
    with pytest.raises(SpecViolation, match="wait_for_status"):
        spec.validate_request("GET", "https://h/_cluster/health?wait_for_status=blue")


def test_ndjson_bulk_accepts_a_list_of_lines(spec: OpenSearchSpec) -> None:
    lines = [
        {"index": {"_index": INDEX, "_id": "1"}},
        {"passage_text": "a"},
        {"delete": {"_index": INDEX, "_id": "2"}},
    ]
    spec.validate_request("POST", "/_bulk", None, lines)
    spec.validate_request("POST", "/_bulk", None, "\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(SpecViolation, match="required"):
        spec.validate_request("POST", "/_bulk")
    with pytest.raises(SpecViolation, match="not valid JSON"):
        spec.validate_request("POST", "/_bulk", None, '{"index": {}\n')


# --------------------------------------------------------------------------- invalid requests


def _mutated(factory: Callable[[], Any], mutate: Callable[[Any], None]) -> Any:
    body = copy.deepcopy(factory())
    mutate(body)
    return body


def _set(path: str, value: Any) -> Callable[[Any], None]:
    def mutate(body: Any) -> None:
        *parents, last = path.split(".")
        for key in parents:
            body = body[int(key)] if isinstance(body, list) else body[key]
        if isinstance(body, list):
            body[int(last)] = value
        else:
            body[last] = value

    return mutate


def _delete(path: str) -> Callable[[Any], None]:
    def mutate(body: Any) -> None:
        *parents, last = path.split(".")
        for key in parents:
            body = body[key]
        del body[last]

    return mutate


# (id, method, path, query, body, regex the message must match)
INVALID_REQUESTS: list[tuple[str, str, str, dict[str, Any] | None, Any, str]] = [
    # unknown paths and methods
    ("unknown path", "GET", "/_plugins/_ml/modelz/abc", None, None, "no path like this"),
    ("unknown ml action", "POST", "/_plugins/_ml/models/abc/_redeploy", None, None, "no path"),
    ("method not defined", "DELETE", "/_cluster/health", None, None, "only for GET"),
    (
        "literal taken as id",
        "PUT",
        "/_plugins/_ml/connectors/_create",
        None,
        {"name": "x"},
        r"only for POST; the less specific /_plugins/_ml/connectors/\{connector_id\}",
    ),
    ("no POST on a model", "POST", f"/_plugins/_ml/models/{MODEL_ID}", None, {}, "only for"),
    # query parameters
    ("unknown query", "GET", "/", {"format": "json"}, None, "'format' is not defined"),
    (
        "register ?deploy=true is not in the spec",
        "POST",
        "/_plugins/_ml/models/_register",
        {"deploy": True},
        register_body(),
        "'deploy' is not defined",
    ),
    (
        "boolean query",
        "DELETE",
        f"/{INDEX}",
        {"ignore_unavailable": "yes"},
        None,
        "ignore_unavailable='yes'",
    ),
    ("enum query", "GET", "/_cluster/health", {"wait_for_status": "ok"}, None, "wait_for_status"),
    ("duration query", "PUT", f"/{INDEX}", {"timeout": "30 seconds"}, None, "timeout"),
    ("dict in query", "GET", "/_cluster/health", {"level": {"a": 1}}, None, "cannot be sent"),
    # bodies where none is defined
    ("body on GET /", "GET", "/", None, {"a": 1}, "takes no request body"),
    ("body on deploy", "POST", f"/_plugins/_ml/models/{MODEL_ID}/_deploy", None, {}, "no request"),
    # connector create
    (
        "connector version as string (the blog's form)",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _set("version", "1")),
        r"\$\.version: '1' is not of type 'integer'",
    ),
    (
        "connector without actions",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _delete("actions")),
        "'actions' is a required property",
    ),
    (
        "connector protocol",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _set("protocol", "sigv4")),
        r"\$\.protocol",
    ),
    (
        "client_config typo",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _set("client_config.max_connections", 20)),
        r"\$\.client_config\.max_connections: 'max_connections' is not a property",
    ),
    (
        "client_config type",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _set("client_config.max_retry_times", "5")),
        r"\$\.client_config\.max_retry_times: '5' is not of type 'integer'",
    ),
    (
        "request_body must be a string template",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _set("actions.0.request_body", {"texts": []})),
        r"\$\.actions\[0\]\.request_body",
    ),
    (
        "action typo",
        "POST",
        "/_plugins/_ml/connectors/_create",
        None,
        _mutated(connector_body, _set("actions.0.requestBody", "{}")),
        r"'requestBody' is not a property",
    ),
    # model register
    (
        "is_asymmetric as a string",
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        _mutated(register_body, _set("model_config.additional_config.is_asymmetric", "true")),
        r"\$\.model_config\.additional_config\.is_asymmetric: 'true' is not of type 'boolean'",
    ),
    (
        "embedding_dimension as a string",
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        _mutated(register_body, _set("model_config.embedding_dimension", "384")),
        r"embedding_dimension: '384' is not of type 'integer'",
    ),
    (
        "register without name",
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        _mutated(register_body, _delete("name")),
        "'name' is a required property",
    ),
    (
        "register typo",
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        _mutated(register_body, _set("conector_id", CONNECTOR_ID)),
        r"\$\.conector_id: 'conector_id' is not a property",
    ),
    (
        "model_config typo",
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        _mutated(register_body, _set("model_config.additional_config.query_prefx", "q")),
        "'query_prefx' is not a property",
    ),
    (
        "update model with unknown key",
        "PUT",
        f"/_plugins/_ml/models/{MODEL_ID}",
        None,
        {"model_state": "DEPLOYED"},
        "'model_state' is not a property",
    ),
    (
        "predict texts as a string list inside text_docs",
        "POST",
        f"/_plugins/_ml/_predict/text_embedding/{MODEL_ID}",
        None,
        {"text_docs": "What is OpenSearch?"},
        r"\$\.text_docs",
    ),
    # index, mapping, documents, search
    (
        "semantic field without model_id",
        "PUT",
        f"/{INDEX}",
        None,
        _mutated(index_body, _delete("mappings.properties.passage_text.model_id")),
        r"\$\.mappings\.properties\.passage_text: 'model_id' is a required property",
    ),
    (
        "unknown field type",
        "PUT",
        f"/{INDEX}",
        None,
        _mutated(index_body, _set("mappings.properties.passage_text.type", "semantik")),
        "type 'semantik' is not one of the 47 kinds",
    ),
    (
        "semantic field typo",
        "PUT",
        f"/{INDEX}",
        None,
        _mutated(index_body, _set("mappings.properties.passage_text.modelId", MODEL_ID)),
        "'modelId' is not a property",
    ),
    (
        "shards as an object",
        "PUT",
        f"/{INDEX}",
        None,
        _mutated(index_body, _set("settings.index.number_of_shards", {"n": 1})),
        "number_of_shards",
    ),
    (
        "mapping update typo",
        "PUT",
        f"/{INDEX}/_mapping",
        None,
        {"propertys": {}},
        "'propertys' is not a property",
    ),
    ("mapping update without body", "PUT", f"/{INDEX}/_mapping", None, None, "body is required"),
    ("document without body", "PUT", f"/{INDEX}/_doc/1", None, None, "body is required"),
    (
        "misspelt query type",
        "POST",
        f"/{INDEX}/_search",
        None,
        {"query": {"nueral": {"passage_text": {"query_text": "q"}}}},
        r"\$\.query\.nueral",
    ),
    (
        "neural query typo",
        "POST",
        f"/{INDEX}/_search",
        None,
        {"query": {"neural": {"passage_text": {"query": "q"}}}},
        r"'query' is not a property",
    ),
    (
        "neural k as a string",
        "POST",
        f"/{INDEX}/_search",
        None,
        {"query": {"neural": {"passage_text": {"query_text": "q", "k": "10"}}}},
        r"\.k: '10' is not of type 'integer'",
    ),
    ("size as a string", "POST", f"/{INDEX}/_search", None, {"size": "ten"}, r"\$\.size"),
    ("bulk as an object", "POST", "/_bulk", None, {"index": {}}, "is not of type 'array'"),
    # security plugin
    (
        "role mapping with a string",
        "PUT",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        None,
        {"backend_roles": LAMBDA_ROLE_ARN},
        r"\$\.backend_roles: .* is not of type 'array'",
    ),
    (
        "role mapping without a body",
        "PUT",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        None,
        None,
        "body is required",
    ),
    (
        "patch with an object instead of a list",
        "PATCH",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        None,
        {"op": "add", "path": "/backend_roles/-", "value": LAMBDA_ROLE_ARN},
        "is not of type 'array'",
    ),
    (
        "patch operation without path",
        "PATCH",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        None,
        [{"op": "add", "value": LAMBDA_ROLE_ARN}],
        r"\$\[0\]: 'path' is a required property",
    ),
    (
        "role with a misspelt permission key",
        "PUT",
        "/_plugins/_security/api/roles/r",
        None,
        {"index_permissions": [{"index_pattern": [INDEX]}]},
        "'index_pattern' is not a property",
    ),
    # bodies that cannot be JSON
    ("not JSON", "POST", "/_plugins/_ml/models/_register", None, "{name: x}", "not valid JSON"),
    (
        "not serialisable",
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        {"name": {1, 2}},
        "not valid JSON",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "message"),
    [case[1:] for case in INVALID_REQUESTS],
    ids=[case[0] for case in INVALID_REQUESTS],
)
def test_invalid_requests_fail(
    spec: OpenSearchSpec,
    method: str,
    path: str,
    query: dict[str, Any] | None,
    body: Any,
    message: str,
) -> None:
    with pytest.raises(SpecViolation, match=message) as caught:
        spec.validate_request(method, path, query, body)
    # The message always names the request; when an operation matched, also its group.
    assert f"{method} " in str(caught.value)
    if caught.value.operation is not None:
        assert caught.value.operation.group in str(caught.value)


def test_violation_carries_structured_details(spec: OpenSearchSpec) -> None:
    body = _mutated(register_body, _set("model_config.additional_config.is_asymmetric", 1))
    with pytest.raises(SpecViolation) as caught:
        spec.validate_request("POST", "/_plugins/_ml/models/_register", None, body)
    violation = caught.value
    assert isinstance(violation, AssertionError)  # pytest reports it as a failed check
    assert violation.location == "body"
    assert violation.field_path == "$.model_config.additional_config.is_asymmetric"
    assert violation.operation is not None
    assert violation.operation.group == "ml.register_model"
    assert violation.problems


def test_query_values_are_checked_as_they_travel(spec: OpenSearchSpec) -> None:
    """Booleans, numbers and lists become text; bare flags mean true."""
    spec.validate_request("GET", f"/{INDEX}", {"include_defaults": True, "flat_settings": "false"})
    spec.validate_request("GET", f"/{INDEX}", {"expand_wildcards": ["open", "hidden"]})
    spec.validate_request("GET", f"/{INDEX}?expand_wildcards=open,hidden")
    spec.validate_request("PUT", f"/{INDEX}/_doc/1?refresh", None, {"a": 1})
    spec.validate_request("GET", "/_cluster/health", {"level": None})  # None: not sent
    with pytest.raises(SpecViolation, match="expand_wildcards"):
        spec.validate_request("GET", f"/{INDEX}", {"expand_wildcards": ["open", "everything"]})


def test_lax_mode_accepts_undeclared_keys(spec: OpenSearchSpec) -> None:
    """strict=False checks only what the specification states: types and required keys."""
    body = _mutated(register_body, _set("conector_id", "x"))
    spec.validate_request("POST", "/_plugins/_ml/models/_register", None, body, strict=False)
    bad = _mutated(register_body, _set("model_config.embedding_dimension", "384"))
    with pytest.raises(SpecViolation):
        spec.validate_request("POST", "/_plugins/_ml/models/_register", None, bad, strict=False)


# --------------------------------------------------------------------------- responses

VALID_RESPONSES: list[tuple[str, str, int, Any]] = [
    (
        "GET",
        "/",
        200,
        {
            "name": "node-1",
            "cluster_name": "123456789012:semantic-search-dev",
            "cluster_uuid": "x8aB2dWqR0e8vYw1H1yJtA",
            "version": {
                "distribution": "opensearch",
                "number": "3.7.0",
                "build_type": "tar",
                "build_hash": "unknown",
                "build_date": "2026-07-01T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": "10.3.1",
                "minimum_wire_compatibility_version": "2.19.0",
                "minimum_index_compatibility_version": "2.0.0",
            },
            "tagline": "The OpenSearch Project: https://opensearch.org/",
        },
    ),
    (
        "GET",
        "/_cluster/health",
        200,
        {
            "cluster_name": "c",
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 2,
            "number_of_data_nodes": 2,
            "discovered_master": True,
            "discovered_cluster_manager": True,
            "active_primary_shards": 1,
            "active_shards": 2,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        },
    ),
    ("POST", "/_plugins/_ml/connectors/_create", 200, {"connector_id": CONNECTOR_ID}),
    (
        "POST",
        "/_plugins/_ml/connectors/_search",
        200,
        search_hits(
            {"name": "semantic-search-dev-e5", "protocol": "aws_sigv4"}, ".plugins-ml-connector"
        ),
    ),
    (
        "GET",
        f"/_plugins/_ml/connectors/{CONNECTOR_ID}",
        200,
        {
            **{k: v for k, v in connector_body().items() if k != "credential"},
            "version": "1",
            "created_time": 1_760_000_000_000,
            "last_updated_time": 1_760_000_000_000,
        },
    ),
    (
        "PUT",
        f"/_plugins/_ml/connectors/{CONNECTOR_ID}",
        200,
        write_response(".plugins-ml-connector", CONNECTOR_ID, "updated"),
    ),
    (
        "DELETE",
        f"/_plugins/_ml/connectors/{CONNECTOR_ID}",
        200,
        write_response(".plugins-ml-connector", CONNECTOR_ID, "deleted"),
    ),
    (
        "POST",
        "/_plugins/_ml/models/_register",
        200,
        {"task_id": TASK_ID, "status": "CREATED", "model_id": MODEL_ID},
    ),
    (
        "POST",
        "/_plugins/_ml/models/_search",
        200,
        search_hits(
            {"name": "semantic-search-dev-e5", "model_state": "DEPLOYED", "connector_id": "c"},
            ".plugins-ml-model",
        ),
    ),
    ("GET", f"/_plugins/_ml/models/{MODEL_ID}", 200, model_response()),
    ("GET", f"/_plugins/_ml/models/{MODEL_ID}", 200, model_response("DEPLOY_FAILED")),
    (
        "POST",
        f"/_plugins/_ml/models/{MODEL_ID}/_deploy",
        200,
        {"task_id": TASK_ID, "task_type": "DEPLOY_MODEL", "status": "CREATED"},
    ),
    (
        "POST",
        f"/_plugins/_ml/models/{MODEL_ID}/_undeploy",
        200,
        {"zfC2dQ7rRqqRXYhXJkH5Sg": {"stats": {MODEL_ID: "UNDEPLOYED"}}},
    ),
    (
        "DELETE",
        f"/_plugins/_ml/models/{MODEL_ID}",
        200,
        write_response(".plugins-ml-model", MODEL_ID, "deleted"),
    ),
    (
        "PUT",
        f"/_plugins/_ml/models/{MODEL_ID}",
        200,
        write_response(".plugins-ml-model", MODEL_ID, "updated"),
    ),
    (
        "GET",
        f"/_plugins/_ml/tasks/{TASK_ID}",
        200,
        {
            "model_id": MODEL_ID,
            "task_type": "DEPLOY_MODEL",
            "function_name": "REMOTE",
            "state": "FAILED",
            "worker_node": ["zfC2dQ7rRqqRXYhXJkH5Sg"],
            "create_time": 1_760_000_000_000,
            "last_update_time": 1_760_000_000_900,
            "error": '{"zfC2dQ7rRqqRXYhXJkH5Sg":"Connection refused"}',
            "is_async": True,
        },
    ),
    (
        "POST",
        f"/_plugins/_ml/models/{MODEL_ID}/_predict",
        200,
        {
            "inference_results": [
                {
                    "output": [
                        {
                            "name": "sentence_embedding",
                            "data_type": "FLOAT32",
                            "shape": [3],
                            "data": [0.1, 0.2, 0.3],
                        }
                    ]
                }
            ]
        },
    ),
    (
        "POST",
        f"/_plugins/_ml/_predict/text_embedding/{MODEL_ID}",
        200,
        {"inference_results": [{"output": [{"name": "response", "data": [0.1, 0.2]}]}]},
    ),
    ("PUT", f"/{INDEX}", 200, {"acknowledged": True, "shards_acknowledged": True, "index": INDEX}),
    (
        "GET",
        f"/{INDEX}",
        200,
        {
            INDEX: {
                "aliases": {},
                "mappings": {
                    "properties": {
                        "passage_text": {
                            "type": "semantic",
                            "model_id": MODEL_ID,
                            "raw_field_type": "text",
                        },
                        "passage_text_semantic_info": {
                            "properties": {
                                "embedding": {
                                    "type": "knn_vector",
                                    "dimension": 384,
                                    "method": {
                                        "engine": "faiss",
                                        "space_type": "cosinesimil",
                                        "name": "hnsw",
                                        "parameters": {},
                                    },
                                },
                                "model": {
                                    "properties": {
                                        "id": {"type": "text", "index": False},
                                        "name": {"type": "text", "index": False},
                                        "type": {"type": "text", "index": False},
                                    }
                                },
                            }
                        },
                    }
                },
                "settings": {
                    "index": {
                        "knn": "true",
                        "number_of_shards": "1",
                        "number_of_replicas": "1",
                        "uuid": "x",
                        "version": {"created": "137287827"},
                        "provided_name": INDEX,
                        "creation_date": "1760000000000",
                    }
                },
            }
        },
    ),
    ("HEAD", f"/{INDEX}", 200, None),
    ("HEAD", f"/{INDEX}", 404, None),
    ("HEAD", f"/{INDEX}", 200, {"ignored": "HTTP drops a HEAD body"}),
    ("DELETE", f"/{INDEX}", 200, {"acknowledged": True}),
    ("PUT", f"/{INDEX}/_mapping", 200, {"acknowledged": True}),
    ("PUT", f"/{INDEX}/_doc/1", 201, write_response(INDEX, "1", "created")),
    ("PUT", f"/{INDEX}/_doc/1", 200, write_response(INDEX, "1", "updated")),
    ("DELETE", f"/{INDEX}/_doc/1", 200, write_response(INDEX, "1", "deleted")),
    ("DELETE", f"/{INDEX}/_doc/1", 404, write_response(INDEX, "1", "not_found")),
    ("POST", f"/{INDEX}/_search", 200, search_hits({"passage_text": "OpenSearch is..."}, INDEX)),
    (
        "POST",
        "/_bulk",
        200,
        {
            "took": 30,
            "errors": False,
            "items": [
                {"index": {**write_response(INDEX, "1", "created"), "status": 201}},
            ],
        },
    ),
    ("POST", f"/{INDEX}/_refresh", 200, {"_shards": SHARDS}),
    ("GET", f"/{INDEX}/_count", 200, {"count": 1, "_shards": {**SHARDS, "skipped": 0}}),
    (
        "GET",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        200,
        {
            "ml_full_access": {
                "hosts": [],
                "users": [],
                "reserved": False,
                "hidden": False,
                "backend_roles": [LAMBDA_ROLE_ARN],
                "and_backend_roles": [],
            }
        },
    ),
    (
        "PUT",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        201,
        {"status": "CREATED", "message": "'ml_full_access' created."},
    ),
    (
        "PATCH",
        "/_plugins/_security/api/rolesmapping/ml_full_access",
        200,
        {"status": "OK", "message": "Resource updated."},
    ),
    (
        "DELETE",
        "/_plugins/_security/api/rolesmapping/x",
        200,
        {"status": "OK", "message": "'x' deleted."},
    ),
    (
        "GET",
        "/_plugins/_security/api/roles/r",
        200,
        {"r": {"cluster_permissions": [], "index_permissions": [], "reserved": False}},
    ),
    ("PUT", "/_plugins/_security/api/roles/r", 201, {"status": "CREATED", "message": "created"}),
    ("DELETE", "/_plugins/_security/api/roles/r", 200, {"status": "OK", "message": "deleted"}),
    # Undocumented error statuses: the common error shapes.
    (
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        404,
        {
            "error": {
                "root_cause": [{"type": "status_exception", "reason": "Failed to find model"}],
                "type": "status_exception",
                "reason": "Failed to find model",
            },
            "status": 404,
        },
    ),
    (
        "DELETE",
        f"/_plugins/_ml/connectors/{CONNECTOR_ID}",
        409,
        {
            "error": {
                "type": "status_exception",
                "reason": "1 models are still using this connector, please delete or update "
                "the models first: [" + MODEL_ID + "]",
            },
            "status": 409,
        },
    ),
    (
        "GET",
        "/_plugins/_security/api/rolesmapping/nope",
        404,
        {"status": "NOT_FOUND", "message": "Resource 'nope' not found."},
    ),
    (
        "PUT",
        f"/{INDEX}",
        400,
        {
            "error": {"type": "resource_already_exists_exception", "reason": "index exists"},
            "status": 400,
        },
    ),
]


FRONT_END_DENIAL = {
    "Message": f"User: {LAMBDA_ROLE_ARN} is not authorized to perform: es:ESHttpPost "
    "because no identity-based policy allows the es:ESHttpPost action"
}
VALID_RESPONSES += [
    # Refusals of the AWS front end (IAM access policy, throttling, gateways): not OpenSearch's.
    ("POST", "/_plugins/_ml/connectors/_create", 403, FRONT_END_DENIAL),
    ("GET", "/", 429, {"Message": "Too Many Requests"}),
    ("GET", "/", 503, None),
    (
        "POST",
        "/_plugins/_ml/connectors/_create",
        403,
        {
            "error": {
                "root_cause": [{"type": "security_exception", "reason": "no permissions"}],
                "type": "security_exception",
                "reason": "no permissions for [cluster:admin/opensearch/ml/create_connector]",
            },
            "status": 403,
        },
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    VALID_RESPONSES,
    ids=[f"{m} {p} {s}" for m, p, s, _ in VALID_RESPONSES],
)
def test_valid_responses_pass(
    spec: OpenSearchSpec, method: str, path: str, status: int, body: Any
) -> None:
    spec.validate_response(method, path, status, body)


INVALID_RESPONSES: list[tuple[str, str, str, int, Any, str]] = [
    (
        "register without task_id",
        "POST",
        "/_plugins/_ml/models/_register",
        200,
        {"status": "CREATED", "model_id": MODEL_ID},
        "'task_id' is a required property",
    ),
    (
        "unknown model state",
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        200,
        {**model_response(), "model_state": "READY"},
        r"\$\.model_state: 'READY' is not one of",
    ),
    (
        "emulated is_asymmetric as a string",
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        200,
        _mutated(model_response, _set("model_config.additional_config.is_asymmetric", "true")),
        "is_asymmetric: 'true' is not of type 'boolean'",
    ),
    (
        "model without state",
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        200,
        _mutated(model_response, _delete("model_state")),
        "'model_state' is a required property",
    ),
    (
        "unknown task state",
        "GET",
        f"/_plugins/_ml/tasks/{TASK_ID}",
        200,
        {"state": "DONE"},
        r"\$\.state",
    ),
    (
        "undocumented success status",
        "POST",
        "/_plugins/_ml/models/_register",
        201,
        {"task_id": TASK_ID, "status": "CREATED"},
        "status 201 is not documented",
    ),
    (
        "error without type",
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        404,
        {"error": {"reason": "Failed to find model"}, "status": 404},
        "'type' is a required property",
    ),
    (
        "error body status disagrees",
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        404,
        {"error": {"type": "x", "reason": "y"}, "status": 400},
        "error body says status 400, the HTTP status is 404",
    ),
    (
        "security error in the common shape",
        "GET",
        "/_plugins/_security/api/rolesmapping/nope",
        404,
        {"status": "GONE", "message": "x"},
        r"\$\.status: 'GONE' is not one of",
    ),
    (
        "front-end shape for a client error",
        "GET",
        f"/_plugins/_ml/models/{MODEL_ID}",
        400,
        {"Message": "bad"},
        "'error' is a required property",
    ),
    ("4xx without a body", "GET", f"/_plugins/_ml/models/{MODEL_ID}", 404, None, "without a body"),
    (
        "documented body missing",
        "POST",
        "/_plugins/_ml/models/_register",
        200,
        None,
        "documented with a JSON body, but none was given",
    ),
    ("response not JSON", "GET", "/", 200, b"<html>", "not valid JSON"),
    (
        "index create without acknowledged",
        "PUT",
        f"/{INDEX}",
        200,
        {"index": INDEX},
        "'acknowledged' is a required property",
    ),
    (
        "count as a string",
        "GET",
        f"/{INDEX}/_count",
        200,
        {"count": "1", "_shards": SHARDS},
        r"\$\.count: '1' is not of type 'integer'",
    ),
    (
        "bulk without errors flag",
        "POST",
        "/_bulk",
        200,
        {"took": 1, "items": []},
        "'errors' is a required property",
    ),
    (
        "search hits without total relation",
        "POST",
        "/_plugins/_ml/models/_search",
        200,
        {"hits": {"total": {"value": 1}, "hits": [], "max_score": None}},
        "'relation' is a required property",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "message"),
    [case[1:] for case in INVALID_RESPONSES],
    ids=[case[0] for case in INVALID_RESPONSES],
)
def test_invalid_responses_fail(
    spec: OpenSearchSpec, method: str, path: str, status: int, body: Any, message: str
) -> None:
    with pytest.raises(SpecViolation, match=message):
        spec.validate_response(method, path, status, body)


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    VALID_RESPONSES,
    ids=[f"{m} {p} {s}" for m, p, s, _ in VALID_RESPONSES],
)
def test_realistic_responses_pass_strict_checks(
    spec: OpenSearchSpec, method: str, path: str, status: int, body: Any
) -> None:
    """An emulator may check its responses strictly: realistic bodies pass (with supplements)."""
    spec.validate_response(method, path, status, body, strict=True)


def test_strict_responses_reject_undeclared_keys(spec: OpenSearchSpec) -> None:
    body = {"task_id": TASK_ID, "status": "CREATED", "model_id": MODEL_ID, "modelId": "x"}
    spec.validate_response("POST", "/_plugins/_ml/models/_register", 200, body)
    with pytest.raises(SpecViolation, match="'modelId' is not a property"):
        spec.validate_response("POST", "/_plugins/_ml/models/_register", 200, body, strict=True)


def test_validate_exchange_checks_both_sides(spec: OpenSearchSpec) -> None:
    op = spec.validate_exchange(
        "POST",
        "/_plugins/_ml/models/_register",
        None,
        register_body(),
        200,
        {"task_id": TASK_ID, "status": "CREATED", "model_id": MODEL_ID},
    )
    assert op.group == "ml.register_model"
    with pytest.raises(SpecViolation, match="response body"):
        spec.validate_exchange(
            "POST", "/_plugins/_ml/models/_register", None, register_body(), 200, {}
        )
    with pytest.raises(SpecViolation, match="request body"):
        validate_exchange("POST", "/_plugins/_ml/models/_register", None, {}, 200, {})
    # Raw bytes, as an HTTP stub sees them, work too.
    spec.validate_exchange(
        "PUT",
        f"/{INDEX}/_doc/1?refresh=true",
        None,
        b'{"passage_text": "x"}',
        201,
        json.dumps(write_response(INDEX, "1", "created")).encode(),
    )


def test_validated_operations_are_counted(spec: OpenSearchSpec) -> None:
    before = spec.validated_operations["cluster.health"]
    spec.validate_request("GET", "/_cluster/health")
    assert spec.validated_operations["cluster.health"] == before + 1


# --------------------------------------------------------------------------- findings


def test_findings_about_the_specification(spec: OpenSearchSpec, bare_spec: OpenSearchSpec) -> None:
    """What the specification says that the lead should know (see the module report)."""
    # The security REST API is flagged as unavailable on Amazon OpenSearch Service.
    op = spec.find_operation("PUT", "/_plugins/_security/api/rolesmapping/ml_full_access")
    assert "amazon-managed" in op.distributions_excluded
    # The bare specification knows only space_type in additional_config: any type of
    # is_asymmetric passes it when not strict, and strict checking rejects the key.
    body = _mutated(register_body, _set("model_config.additional_config.is_asymmetric", "yes"))
    bare_spec.validate_request("POST", "/_plugins/_ml/models/_register", None, body, strict=False)
    with pytest.raises(SpecViolation, match="'is_asymmetric' is not a property"):
        bare_spec.validate_request("POST", "/_plugins/_ml/models/_register", None, register_body())
    # The remote _predict output without a post-process function (dataAsMap) is not
    # what the bare specification documents for POST /_plugins/_ml/models/{id}/_predict.
    raw = {
        "inference_results": [
            {
                "output": [{"name": "response", "dataAsMap": {"response": [[0.1, 0.2]]}}],
                "status_code": 200,
            }
        ]
    }
    with pytest.raises(SpecViolation, match="'data' is a required property"):
        bare_spec.validate_response("POST", f"/_plugins/_ml/models/{MODEL_ID}/_predict", 200, raw)
    spec.validate_response(
        "POST", f"/_plugins/_ml/models/{MODEL_ID}/_predict", 200, raw, strict=True
    )
    # The bare Model schema has no connector_id or description (the server returns both).
    bare_spec.validate_response("GET", f"/_plugins/_ml/models/{MODEL_ID}", 200, model_response())
    with pytest.raises(SpecViolation, match="'connector_id' is not a property"):
        bare_spec.validate_response(
            "GET", f"/_plugins/_ml/models/{MODEL_ID}", 200, model_response(), strict=True
        )
    # Without the supplement, a list in _predict parameters breaks the spec's string-only map.
    body = {"parameters": {"texts": ["q"], "content_type": "query"}}
    with pytest.raises(SpecViolation, match="is not of type 'string'"):
        bare_spec.validate_request("POST", f"/_plugins/_ml/models/{MODEL_ID}/_predict", None, body)


def test_supplements_name_existing_schemas(spec: OpenSearchSpec) -> None:
    for supplement in SUPPLEMENTS:
        assert supplement.reason
        target = spec.document
        for token in supplement.pointer.split("/")[1:]:
            target = target[token.replace("~1", "/").replace("~0", "~")]
        assert set(supplement.properties) <= set(target["properties"])
        assert not set(supplement.not_required) & set(target.get("required", ()))


# --------------------------------------------------------------------------- loading


def test_vendored_copy_matches_the_shared_one() -> None:
    """The repository's copy is the team's shared copy (when this machine has it)."""
    if not SHARED_SPEC.exists():
        pytest.skip("no ../shared copy on this machine")
    assert VENDORED_SPEC.read_bytes() == SHARED_SPEC.read_bytes()
    for name in ("LICENSE.txt", "NOTICE.txt"):
        assert (VENDORED_SPEC.parent / name).exists()


def test_load_is_cached_and_fast(spec: OpenSearchSpec) -> None:
    assert OpenSearchSpec.load() is spec
    started = time.perf_counter()
    for _ in range(200):
        spec.validate_request("POST", "/_plugins/_ml/models/_register", None, register_body())
        spec.validate_request("POST", f"/{INDEX}/_search", None, neural_search_body())
    per_call_ms = (time.perf_counter() - started) / 400 * 1000
    assert per_call_ms < 20, per_call_ms  # generous: shared CI machines are slow


def test_environment_override_and_gzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENSEARCH_API_SPEC points at another copy; a .yaml.gz copy loads the same."""
    packed = tmp_path / "opensearch-openapi.yaml.gz"
    packed.write_bytes(gzip.compress(VENDORED_SPEC.read_bytes(), compresslevel=1))
    monkeypatch.setenv(SPEC_ENV_VAR, str(packed))
    other = OpenSearchSpec.load()
    assert other.source == str(packed.resolve())
    assert other.digest == OpenSearchSpec.load(VENDORED_SPEC).digest
    other.validate_request("POST", "/_plugins/_ml/models/_register", None, register_body())


def test_a_small_custom_document_works() -> None:
    """The checker does not depend on the size of the document: a hand-made one works."""
    document = {
        "openapi": "3.1.0",
        "paths": {
            "/things/{id}": {
                "put": {
                    "operationId": "things.put.0",
                    "x-operation-group": "things.put",
                    "parameters": [
                        {
                            "in": "path",
                            "name": "id",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {"in": "query", "name": "n", "schema": {"type": "integer"}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        },
                    },
                    "responses": {"200": {"description": "", "content": {}}},
                }
            }
        },
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "properties": {"a": {"type": "boolean"}},
                    "required": ["a"],
                }
            }
        },
    }
    custom = OpenSearchSpec(document, supplements=())
    custom.validate_request("PUT", "/things/1", {"n": "3"}, {"a": True})
    custom.validate_response("PUT", "/things/1", 200, None)
    with pytest.raises(SpecViolation, match="n='x'"):
        custom.validate_request("PUT", "/things/1", {"n": "x"}, {"a": True})
    with pytest.raises(SpecViolation, match="'b' is not a property"):
        custom.validate_request("PUT", "/things/1", None, {"a": True, "b": 1})
    with pytest.raises(SpecViolation, match="documented without a body"):
        custom.validate_response("PUT", "/things/1", 200, {"a": True})
