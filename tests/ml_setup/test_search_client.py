"""The search-client identity after a real Create: what a search application can and cannot do.

The client role is mapped by ``Custom::MlAccessMapping``; these tests sign as
that IAM identity against the emulated domain, whose fine-grained access
control evaluates the role exactly as the security plugin would (cluster vs
index permissions, alias resolution, predict under the caller's identity).
The alias rules of the emulator itself are checked at the end, because the
semantic index resource and the tools rely on them.
"""

from __future__ import annotations

import pytest

from tests.ml_setup.conftest import CLIENT, MASTER, OUTSIDER, SETUP, Stack
from tests.ml_setup.http import signed_request
from tests.support.opensearch_emulator import OpenSearchEmulator, Principal

INDEX = "Custom::SemanticIndex"
MODEL = "Custom::MlModel"
PASSAGE = "OpenSearch is a community-driven, open-source search and analytics suite."


@pytest.fixture
def deployed(stack: Stack) -> Stack:
    results = stack.create()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    return stack


def call(emu: OpenSearchEmulator, who: Principal, method: str, path: str, body: object = None):  # type: ignore[no-untyped-def]
    return signed_request(emu, who, method, path, body)


def test_the_client_indexes_searches_and_predicts_through_the_alias(
    deployed: Stack, emulator: OpenSearchEmulator
) -> None:
    concrete = deployed.data[INDEX]["IndexName"]
    model_id = deployed.data[MODEL]["ModelId"]
    assert call(emulator, CLIENT, "GET", "/_cluster/health")[0] == 200
    status, model = call(emulator, CLIENT, "GET", f"/_plugins/_ml/models/{model_id}")
    assert status == 200 and model["model_state"] == "DEPLOYED"
    predict = {"parameters": {"texts": ["What is OpenSearch?"], "content_type": "QUERY"}}
    assert (
        call(emulator, CLIENT, "POST", f"/_plugins/_ml/models/{model_id}/_predict", predict)[0]
        == 200
    )

    status, written = call(emulator, CLIENT, "PUT", "/documents/_doc/1", {"passage_text": PASSAGE})
    assert status == 201 and written["_index"] == concrete  # the alias resolved to the index
    assert "passage_text_semantic_info" in emulator.indices[concrete].docs["1"]  # embedded
    status, found = call(emulator, CLIENT, "GET", "/documents/_doc/1")
    assert status == 200 and found["_source"]["passage_text"] == PASSAGE
    assert call(emulator, CLIENT, "POST", "/documents/_refresh")[0] == 200
    neural = {"query": {"neural": {"passage_text": {"query_text": "What is OpenSearch?"}}}}
    status, hits = call(emulator, CLIENT, "POST", "/documents/_search", neural)
    assert status == 200 and hits["hits"]["hits"][0]["_id"] == "1"
    # The concrete name works too (the role covers <index_name>-*).
    assert call(emulator, CLIENT, "POST", f"/{concrete}/_search", neural)[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "denied"),
    [
        ("PUT", "/documents-new", {}, "indices:admin/create"),
        ("DELETE", "/{concrete}", None, "indices:admin/delete"),
        ("PUT", "/{concrete}/_mapping", {"properties": {"x": {"type": "text"}}}, "mapping/put"),
        ("PUT", "/{concrete}/_settings", {"index": {"number_of_replicas": 2}}, "settings/update"),
        ("PUT", "/other/_doc/1", {"passage_text": "x"}, "indices:data/write/index"),
        ("POST", "/_plugins/_ml/models/{model}/_undeploy", None, "ml/undeploy_model"),
        ("POST", "/_plugins/_ml/connectors/_search", {"query": {"match_all": {}}}, "connectors"),
        ("GET", "/_plugins/_security/api/rolesmapping/all_access", None, "restapi:admin"),
        (
            "POST",
            "/_aliases",
            {"actions": [{"add": {"index": "{concrete}", "alias": "stolen"}}]},
            "indices:admin/aliases",
        ),
    ],
)
def test_master_and_setup_operations_are_refused_to_the_client(
    method: str,
    path: str,
    body: object,
    denied: str,
    deployed: Stack,
    emulator: OpenSearchEmulator,
) -> None:
    concrete = deployed.data[INDEX]["IndexName"]
    model_id = deployed.data[MODEL]["ModelId"]

    def fill(value: object) -> object:
        if isinstance(value, str):
            return value.replace("{concrete}", concrete).replace("{model}", model_id)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    status, answer = call(emulator, CLIENT, method, str(fill(path)), fill(body))
    assert status == 403, answer
    assert denied in str(answer)
    assert concrete in emulator.indices and emulator.aliases == {"documents": {concrete: {}}}


def test_identities_without_the_client_role_cannot_write_or_search_documents(
    deployed: Stack, emulator: OpenSearchEmulator
) -> None:
    neural = {"query": {"neural": {"passage_text": {"query_text": "q"}}}}
    # The setup role may write and search the app's indexes since it runs the
    # re-embedding _reindex as itself (test_migration.py); nobody else may.
    for who in (OUTSIDER,):
        assert call(emulator, who, "PUT", "/documents/_doc/1", {"passage_text": PASSAGE})[0] == 403
        assert call(emulator, who, "POST", "/documents/_search", neural)[0] == 403


def test_without_ml_predict_neither_semantic_ingest_nor_neural_queries_work(
    deployed: Stack, emulator: OpenSearchEmulator
) -> None:
    """neural-search embeds under the caller's identity: index permissions alone are not enough."""
    role = emulator.roles["e5search-dev-search-client"]
    role["cluster_permissions"] = [
        p for p in role["cluster_permissions"] if p != "cluster:admin/opensearch/ml/predict"
    ]
    status, body = call(emulator, CLIENT, "PUT", "/documents/_doc/1", {"passage_text": PASSAGE})
    assert status == 403 and "cluster:admin/opensearch/ml/predict" in str(body)
    # A document without the semantic field needs no inference and is accepted.
    assert call(emulator, CLIENT, "PUT", "/documents/_doc/2", {"title": "plain"})[0] == 201
    neural = {"query": {"neural": {"passage_text": {"query_text": "q"}}}}
    status, body = call(emulator, CLIENT, "POST", "/documents/_search", neural)
    assert status == 403 and "cluster:admin/opensearch/ml/predict" in str(body)


# ----------------------------------------------------------------------------- alias rules


def test_a_write_through_an_alias_over_two_indexes_needs_a_write_index(
    deployed: Stack, emulator: OpenSearchEmulator
) -> None:
    concrete = deployed.data[INDEX]["IndexName"]
    assert (
        call(emulator, MASTER, "PUT", "/documents-second", {"aliases": {"documents": {}}})[0] == 200
    )
    status, body = call(emulator, MASTER, "PUT", "/documents/_doc/1", {"title": "x"})
    assert status == 400 and "no write index is defined for alias [documents]" in str(body)
    flag = {"actions": [{"add": {"index": concrete, "alias": "documents", "is_write_index": True}}]}
    assert call(emulator, MASTER, "POST", "/_aliases", flag)[0] == 200
    status, body = call(emulator, MASTER, "PUT", "/documents/_doc/1", {"title": "x"})
    assert status == 201 and body["_index"] == concrete


def test_alias_actions_are_atomic_and_aliases_go_with_their_index(
    deployed: Stack, emulator: OpenSearchEmulator
) -> None:
    concrete = deployed.data[INDEX]["IndexName"]
    # The second action fails (no such index): the first must not have applied.
    actions = {
        "actions": [
            {"remove": {"index": concrete, "alias": "documents"}},
            {"add": {"index": "documents-missing", "alias": "documents"}},
        ]
    }
    status, body = call(emulator, MASTER, "POST", "/_aliases", actions)
    assert status == 404 and "index_not_found_exception" in str(body)
    assert emulator.aliases == {"documents": {concrete: {}}}
    status, body = call(emulator, MASTER, "GET", "/_alias/documents")
    assert status == 200 and body == {concrete: {"aliases": {"documents": {}}}}
    # An alias is not deleted through the index API, and an index name cannot be an alias.
    assert call(emulator, MASTER, "DELETE", "/documents")[0] == 400
    assert call(emulator, MASTER, "PUT", "/documents", {})[0] == 400
    assert call(emulator, MASTER, "DELETE", f"/{concrete}")[0] == 200
    assert emulator.aliases == {}
    status, body = call(emulator, MASTER, "GET", "/_alias/documents")
    assert status == 404 and body == {"error": "alias [documents] missing", "status": 404}


def test_creating_an_index_with_an_alias_needs_the_alias_permission(
    deployed: Stack, emulator: OpenSearchEmulator
) -> None:
    role = emulator.roles["e5search-dev-ml-setup"]
    role["index_permissions"][0]["allowed_actions"] = ["indices:admin/create"]
    status, body = call(emulator, SETUP, "PUT", "/documents-next", {"aliases": {"documents": {}}})
    assert status == 403 and "indices:admin/aliases" in str(body)
    assert "documents-next" not in emulator.indices
    assert call(emulator, SETUP, "PUT", "/documents-next", {})[0] == 200
