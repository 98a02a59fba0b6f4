"""Custom::HybridSearchPipeline: create, update in place, rename, delete, against the emulator.

The emulated domain here is the evaluation's ``SearchEmulator`` (the shared
emulator plus BM25 ``match`` and ``hybrid`` scoring), so that the pipeline the
resource deploys is proven to serve the README's hybrid query as the
search-client role, not only to be stored. The pipeline rules themselves
(techniques, compatibility, weights, wildcard delete) are the shared
emulator's, sourced from neural-search 3.7.0.0 and OpenSearch core.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.evaluate.search_emulator import SearchEmulator
from tests.ml_setup.conftest import Stack, emulated_domain
from tests.ml_setup.http import signed_request
from tests.support.domain_fixtures import CLIENT, MASTER, REGION

PIPELINE = "Custom::HybridSearchPipeline"
INDEX = "Custom::SemanticIndex"
NAME = "documents-hybrid"


@pytest.fixture
def emulator() -> Iterator[SearchEmulator]:
    yield from emulated_domain(SearchEmulator)


def pipeline_props(stack: Stack, **overrides: Any) -> dict[str, Any]:
    """What MlSetupStack passes (stacks/ml_setup.py), for the default configuration."""
    props = {
        "DomainEndpoint": stack.props[INDEX]["DomainEndpoint"],
        "Region": REGION,
        "Name": NAME,
        "Description": "e5search-dev: hybrid search (match first, neural second)",
        "Normalization": "min_max",
        "Combination": "arithmetic_mean",
        "Weights": ["0.3", "0.7"],
    }
    props.update(overrides)
    return props


def created(stack: Stack) -> str:
    results = stack.create()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    result = stack.provider.send("Create", PIPELINE, pipeline_props(stack))
    assert result.status == "SUCCESS", result.reason
    return result.physical_id


def hybrid(emulator: SearchEmulator, principal: Any, index: str, pipeline: str, text: str):
    """The README's hybrid query: lexical match first, neural second."""
    return signed_request(
        emulator,
        principal,
        "POST",
        f"/{index}/_search?search_pipeline={pipeline}",
        {
            "size": 5,
            "query": {
                "hybrid": {
                    "queries": [
                        {"match": {"passage_text": {"query": text}}},
                        {"neural": {"passage_text": {"query_text": text}}},
                    ]
                }
            },
        },
    )


def test_create_deploys_the_pipeline_and_the_client_role_runs_hybrid_queries_with_it(
    stack: Stack, emulator: SearchEmulator
) -> None:
    physical = created(stack)
    assert physical == NAME
    assert emulator.pipelines[NAME]["phase_results_processors"] == [
        {
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {
                    "technique": "arithmetic_mean",
                    "parameters": {"weights": [0.3, 0.7]},
                },
            }
        }
    ]
    alias = "documents"
    for doc_id, text in [
        ("1", "OpenSearch is a community-driven, open-source search and analytics suite."),
        ("2", "Central Park is a large public park in New York City."),
        ("3", "Search engines rank documents by relevance to a query."),
    ]:
        status, _ = signed_request(
            emulator, CLIENT, "PUT", f"/{alias}/_doc/{doc_id}", {"passage_text": text}
        )
        assert status == 201
    status, body = hybrid(emulator, CLIENT, alias, NAME, "open-source search suite")
    assert status == 200, body
    assert body["hits"]["hits"][0]["_id"] == "1"
    # The client may use the pipeline but not change it (least privilege).
    status, _ = signed_request(
        emulator, CLIENT, "PUT", f"/_search/pipeline/{NAME}", emulator.pipelines[NAME]
    )
    assert status == 403


def test_update_of_weights_and_technique_is_in_place(
    stack: Stack, emulator: SearchEmulator
) -> None:
    physical = created(stack)
    old = pipeline_props(stack)
    new = pipeline_props(stack, Normalization="l2", Weights=["0.5", "0.5"])
    result = stack.provider.send("Update", PIPELINE, new, physical_id=physical, old_props=old)
    assert result.status == "SUCCESS", result.reason
    assert result.physical_id == physical
    processor = emulator.pipelines[NAME]["phase_results_processors"][0]["normalization-processor"]
    assert processor["normalization"] == {"technique": "l2"}
    assert processor["combination"]["parameters"] == {"weights": [0.5, 0.5]}


def test_update_restores_a_pipeline_deleted_behind_cloudformations_back(
    stack: Stack, emulator: SearchEmulator
) -> None:
    physical = created(stack)
    del emulator.pipelines[NAME]
    props = pipeline_props(stack, Description="changed")
    result = stack.provider.send(
        "Update", PIPELINE, props, physical_id=physical, old_props=pipeline_props(stack)
    )
    assert result.status == "SUCCESS", result.reason
    assert emulator.pipelines[NAME]["description"] == "changed"


def test_a_new_name_is_a_new_pipeline_and_the_cleanup_deletes_the_old_one(
    stack: Stack, emulator: SearchEmulator
) -> None:
    physical = created(stack)
    renamed = pipeline_props(stack, Name="documents-hybrid-v2")
    result = stack.provider.send(
        "Update", PIPELINE, renamed, physical_id=physical, old_props=pipeline_props(stack)
    )
    assert result.status == "SUCCESS" and result.physical_id == "documents-hybrid-v2"
    assert set(emulator.pipelines) == {NAME, "documents-hybrid-v2"}
    cleanup = stack.provider.send("Delete", PIPELINE, pipeline_props(stack), physical_id=physical)
    assert cleanup.status == "SUCCESS"
    assert set(emulator.pipelines) == {"documents-hybrid-v2"}


def test_delete_removes_it_and_a_second_delete_of_the_missing_pipeline_succeeds(
    stack: Stack, emulator: SearchEmulator
) -> None:
    physical = created(stack)
    for _ in range(2):
        result = stack.provider.send(
            "Delete", PIPELINE, pipeline_props(stack), physical_id=physical
        )
        assert result.status == "SUCCESS", result.reason
        assert NAME not in emulator.pipelines


def test_delete_of_an_id_that_is_a_wildcard_sends_nothing_and_keeps_other_pipelines(
    stack: Stack, emulator: SearchEmulator
) -> None:
    created(stack)
    emulator.pipelines["documents-team-b"] = {"description": "someone else's"}
    before = len(emulator.log)
    result = stack.provider.send(
        "Delete", PIPELINE, pipeline_props(stack), physical_id="documents-*"
    )
    assert result.status == "SUCCESS"
    assert len(emulator.log) == before
    assert {NAME, "documents-team-b"} <= set(emulator.pipelines)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"Weights": ["0.3", "0.6"]}, "Weights"),
        ({"Weights": ["1"]}, "Weights"),
        ({"Weights": ["0.3", "abc"]}, "Weights"),
        ({"Weights": ["-0.5", "1.5"]}, "Weights"),
        ({"Normalization": "l2", "Combination": "rrf"}, "Combination"),
        ({"Normalization": "z_score"}, "Normalization"),
        ({"Normalization": "softmax"}, "Normalization"),
        ({"Name": "documents-*"}, "Name"),
        ({"Name": "../_cluster/settings"}, "Name"),
    ],
)
def test_bad_properties_fail_with_one_line_naming_the_property_before_any_call(
    stack: Stack, emulator: SearchEmulator, overrides: dict[str, Any], named: str
) -> None:
    before = len(emulator.log)
    result = stack.provider.send("Create", PIPELINE, pipeline_props(stack, **overrides))
    assert result.status == "FAILED"
    assert f"property {named}" in result.reason and "\n" not in result.reason
    assert len(result.reason) <= 400
    assert len(emulator.log) == before
    assert emulator.pipelines == {}


# -- the emulator's pipeline rules (neural-search 3.7.0.0, OpenSearch core)


@pytest.fixture
def server() -> Iterator[SearchEmulator]:
    """No specification check: these bodies test the server's rules, which go beyond it
    (the specification lists only l2 and min_max, neural-search 3.7 has more)."""
    with SearchEmulator(master=MASTER, principals=[], region=REGION, validator=None) as emu:
        yield emu


def put(emulator: SearchEmulator, processor: dict[str, Any]) -> tuple[int, Any]:
    body = {"phase_results_processors": [{"normalization-processor": processor}]}
    return signed_request(emulator, MASTER, "PUT", "/_search/pipeline/p", body)


@pytest.mark.parametrize(
    ("processor", "reason"),
    [
        ({"normalization": {"technique": "softmax"}}, "normalization technique is not supported"),
        ({"combination": {"technique": "max"}}, "combination technique is not supported"),
        (
            {
                "normalization": {"technique": "z_score"},
                "combination": {"technique": "harmonic_mean"},
            },
            "harmonic_mean is not supported for normalization technique z_score",
        ),
        ({"combination": {"parameters": {"weights": [0.5, 0.6]}}}, "sum of weights"),
        ({"combination": {"parameters": {"weights": [1.5, -0.5]}}}, "range [0.0 ... 1.0]"),
        ({"combination": {"parameters": {"weights": "0.5,0.5"}}}, "collection of numbers"),
    ],
)
def test_emulator_refuses_what_neural_search_refuses(
    server: SearchEmulator, processor: dict[str, Any], reason: str
) -> None:
    status, body = put(server, processor)
    assert status == 400
    assert reason in body["error"]["reason"]


def test_emulator_accepts_weights_within_a_hundredth_of_one_as_neural_search_does(
    server: SearchEmulator,
) -> None:
    status, _ = put(server, {"combination": {"parameters": {"weights": [0.3, 0.695]}}})
    assert status == 200


def test_emulator_delete_matches_ids_as_wildcards_and_a_miss_is_404(
    emulator: SearchEmulator,
) -> None:
    for name in ("documents-a", "documents-b", "other"):
        emulator.pipelines[name] = {}
    status, _ = signed_request(emulator, MASTER, "DELETE", "/_search/pipeline/documents-*")
    assert status == 200 and set(emulator.pipelines) == {"other"}
    status, body = signed_request(emulator, MASTER, "DELETE", "/_search/pipeline/documents-a")
    assert status == 404 and body["error"]["reason"] == "pipeline [documents-a] is missing"


def test_an_access_mapping_without_the_property_grants_no_pipeline_management(
    stack: Stack, emulator: SearchEmulator
) -> None:
    """Least privilege, and why a stack upgrade updates the mapping before the pipeline."""
    del stack.props["Custom::MlAccessMapping"]["ManageSearchPipelines"]
    results = stack.create()
    assert all(r.status == "SUCCESS" for r in results.values())
    role = emulator.roles["e5search-dev-ml-setup"]
    assert not [p for p in role["cluster_permissions"] if "search/pipeline" in p]
    result = stack.provider.send("Create", PIPELINE, pipeline_props(stack))
    assert result.status == "FAILED"
    assert "cluster:admin/search/pipeline/put" in result.reason
    # The upgrade: the mapping gains the property (an Update), then the pipeline is created.
    stack.props["Custom::MlAccessMapping"]["ManageSearchPipelines"] = True
    assert all(r.status == "SUCCESS" for r in stack.update().values())
    assert stack.provider.send("Create", PIPELINE, pipeline_props(stack)).status == "SUCCESS"
