"""The search-client role with bulk ingest and counts, and why the evaluation is not run as it.

``SearchEmulator`` adds ``_bulk``, ``_count`` and search pipelines to the
shared emulator; the client role is the one ``Custom::MlAccessMapping``
creates (its permission lists are imported from the handler), so these tests
check the real role against the security plugin's rules as the emulator
enforces them: ``_bulk`` needs the cluster-level ``indices:data/write/bulk``
and then ``bulk[s]`` and ``index`` on the index; each item embeds under the
caller's identity.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.evaluate.search_emulator import SearchEmulator
from tests.support.opensearch_emulator import Principal
from tools.opensearch import SignedHttpClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))
from ml_setup.access_mapping import CLIENT_CLUSTER_ACTIONS, CLIENT_INDEX_ACTIONS

REGION = "us-east-1"
MASTER = Principal("arn:aws:iam::111122223333:role/app-MasterRole", "FAKETMPMASTER0000000001", "m")
CLIENT = Principal("arn:aws:iam::111122223333:role/app-ClientRole", "FAKETMPCLIENT0000000001", "c")
CONNECTOR_ROLE = "arn:aws:iam::111122223333:role/app-ConnectorRole"
ALIAS, CONCRETE, ROLE = "documents", "documents-0a1b2c3d", "app-dev-search-client"
FIELD = "passage_text"
SEC = "/_plugins/_security/api"


def client(emu: SearchEmulator, who: Principal) -> SignedHttpClient:
    return SignedHttpClient(emu.endpoint, REGION, lambda: who.credentials, timeout=10)


@pytest.fixture
def emu() -> Iterator[SearchEmulator]:
    """A domain as the ML setup stack leaves it: deployed model, aliased index, client role."""
    with SearchEmulator(
        master=MASTER,
        principals=[CLIENT],
        region=REGION,
        pass_role={MASTER.arn: {CONNECTOR_ROLE}},
        deploy_polls=1,
    ) as domain:
        admin = client(domain, MASTER)
        connector = admin.ok("POST", "/_plugins/_ml/connectors/_create", {
            "name": "e5", "description": "e5", "version": 1, "protocol": "aws_sigv4",
            "parameters": {"region": REGION, "service_name": "sagemaker"},
            "credential": {"roleArn": CONNECTOR_ROLE},
            "actions": [{"action_type": "predict", "method": "POST",
                         "url": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e5/invocations",
                         "request_body": '{ "texts": ${parameters.texts} }'}],
        })["connector_id"]  # fmt: skip
        model_id = admin.ok("POST", "/_plugins/_ml/models/_register", {
            "name": "e5", "function_name": "remote", "connector_id": connector,
            "model_config": {"model_type": "TEXT_EMBEDDING", "embedding_dimension": 16,
                             "framework_type": "SENTENCE_TRANSFORMERS",
                             "additional_config": {"space_type": "cosinesimil",
                                                   "is_asymmetric": True}},
        })["model_id"]  # fmt: skip
        admin.ok("POST", f"/_plugins/_ml/models/{model_id}/_deploy")
        assert admin.ok("GET", f"/_plugins/_ml/models/{model_id}")["model_state"] == "DEPLOYED"
        admin.ok("PUT", f"/{CONCRETE}", {
            "settings": {"index": {"knn": True}},
            "mappings": {"properties": {FIELD: {"type": "semantic", "model_id": model_id}}},
            "aliases": {ALIAS: {}},
        })  # fmt: skip
        admin.ok("PUT", f"{SEC}/roles/{ROLE}", {
            "cluster_permissions": list(CLIENT_CLUSTER_ACTIONS),
            "index_permissions": [{"index_patterns": [f"{ALIAS}-*", ALIAS],
                                   "allowed_actions": list(CLIENT_INDEX_ACTIONS)}],
        })  # fmt: skip
        admin.ok("PUT", f"{SEC}/rolesmapping/{ROLE}", {"backend_roles": [CLIENT.arn]})
        yield domain
        assert not domain.violations, domain.violations


LINES = [
    line
    for i, text in enumerate(["violet stripes", "ferry to the island", "invoices by email"])
    for line in ({"index": {"_id": f"d{i}"}}, {FIELD: text})
]


def test_the_client_bulk_ingests_counts_and_searches_through_the_alias(emu: SearchEmulator) -> None:
    me = client(emu, CLIENT)
    reply = me.ok("POST", f"/{ALIAS}/_bulk", ndjson=LINES)
    assert reply["errors"] is False
    assert {item["index"]["_index"] for item in reply["items"]} == {CONCRETE}
    assert all(f"{FIELD}_semantic_info" in doc for doc in emu.indices[CONCRETE].docs.values())
    me.ok("POST", f"/{ALIAS}/_refresh")
    assert me.ok("GET", f"/{ALIAS}/_count")["count"] == 3
    hits = me.ok("POST", f"/{ALIAS}/_search", {"query": {"neural": {FIELD: {
        "query_text": "which ferry goes to the island?", "k": 3}}}})["hits"]["hits"]  # fmt: skip
    assert hits[0]["_id"] == "d1"


def test_bulk_is_a_cluster_permission_and_each_item_embeds_as_the_caller(
    emu: SearchEmulator,
) -> None:
    role = emu.roles[ROLE]
    role["cluster_permissions"] = [
        p for p in CLIENT_CLUSTER_ACTIONS if p != "indices:data/write/bulk"
    ]
    reply = client(emu, CLIENT).request("POST", f"/{ALIAS}/_bulk", ndjson=LINES)
    assert reply.status == 403 and "indices:data/write/bulk" in reply.reason()
    # With bulk but without predict, the request is accepted and every item fails.
    role["cluster_permissions"] = [
        p for p in CLIENT_CLUSTER_ACTIONS if p != "cluster:admin/opensearch/ml/predict"
    ]
    body = client(emu, CLIENT).ok("POST", f"/{ALIAS}/_bulk", ndjson=LINES)
    assert body["errors"] is True
    assert {item["index"]["status"] for item in body["items"]} == {403}
    assert emu.indices[CONCRETE].docs == {}


def test_bulk_passes_the_same_front_end_as_every_other_api(emu: SearchEmulator) -> None:
    """NDJSON is decoded by the route, inside the base front end: a 503 that comes after the
    request took effect applies to ``_bulk`` too, and the call is logged and spec-checked."""
    emu.faults.add(
        1, 503, {"message": "gateway"}, path_prefix=f"/{ALIAS}/_bulk", after_processing=True
    )
    reply = client(emu, MASTER).request("POST", f"/{ALIAS}/_bulk", ndjson=LINES)
    assert reply.status == 503
    assert sorted(emu.indices[CONCRETE].docs) == ["d0", "d1", "d2"]  # it took effect
    body = client(emu, MASTER).ok("POST", f"/{ALIAS}/_bulk", ndjson=LINES)
    assert {item["index"]["result"] for item in body["items"]} == {"updated"}
    assert [c[3] for c in emu.calls() if c[2].endswith("/_bulk")] == [503, 200]
    assert emu.faults.pending() == 0 and emu.violations == []


def test_what_an_evaluation_needs_is_refused_to_the_client(emu: SearchEmulator) -> None:
    """docs/evaluation.md: evaluations run as the master role, because these stay refused."""
    me = client(emu, CLIENT)
    pipeline = {"phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max"},
        "combination": {"technique": "arithmetic_mean",
                        "parameters": {"weights": [0.3, 0.7]}}}}]}  # fmt: skip
    refused = [
        me.request("PUT", "/eval-scifact-1234", {"settings": {"index": {"knn": True}}}),
        me.request("PUT", "/_search/pipeline/eval-hybrid", pipeline),
        me.request("PUT", f"/{ALIAS}-copy", {}),
    ]
    assert [r.status for r in refused] == [403, 403, 403]
    assert client(emu, MASTER).request("PUT", "/_search/pipeline/eval-hybrid", pipeline).ok
