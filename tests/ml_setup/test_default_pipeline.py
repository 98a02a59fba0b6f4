"""The hybrid pipeline as the semantic index's default (``index.search.default_pipeline``).

``Custom::SemanticIndex`` sets the dynamic setting in place (no replacement, no
copy) from ``DefaultSearchPipeline`` and removes it when the property goes; a
replacement index is created with it. Against the evaluation's emulator, whose
``hybrid`` scoring runs through the resolved pipeline: with the default, the
README's hybrid query needs no ``?search_pipeline=``, and a plain ``neural``
query is answered as without it (the normalization processor skips it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.evaluate.search_emulator import SearchEmulator
from tests.ml_setup.conftest import Stack, emulated_domain
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_search_pipeline import INDEX, NAME, PIPELINE, created, pipeline_props
from tests.support.domain_fixtures import CLIENT

SETTING = "index.search.default_pipeline"
TEXTS = {
    "d1": "the ferry crosses to the island every forty minutes",
    "d2": "invoices are sent by email at the start of each month",
    "d3": "the support desk is open on weekdays from nine to five",
}


@pytest.fixture
def emulator() -> Iterator[SearchEmulator]:
    yield from emulated_domain(SearchEmulator)


def search(emulator: SearchEmulator, query: dict[str, Any], params: str = "") -> tuple[int, Any]:
    return signed_request(
        emulator, CLIENT, "POST", f"/documents/_search{params}", {"size": 5, "query": query}
    )


HYBRID = {
    "hybrid": {
        "queries": [
            {"match": {"passage_text": {"query": "when is the support desk open"}}},
            {"neural": {"passage_text": {"query_text": "when is the support desk open"}}},
        ]
    }
}
NEURAL = {"neural": {"passage_text": {"query_text": "when is the support desk open"}}}


def filled(stack: Stack, emulator: SearchEmulator) -> None:
    created(stack)
    for doc_id, text in TEXTS.items():
        status, _ = signed_request(
            emulator, CLIENT, "PUT", f"/documents/_doc/{doc_id}", {"passage_text": text}
        )
        assert status == 201


def update_index(stack: Stack) -> Any:
    results = stack.update()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    return results[INDEX]


def settings_calls(emulator: SearchEmulator) -> list[tuple[str, str, str, int]]:
    return [c for c in emulator.calls() if c[2].endswith("/_settings")]


def test_the_default_is_set_and_removed_in_place_and_serves_hybrid_without_a_parameter(
    stack: Stack, emulator: SearchEmulator
) -> None:
    filled(stack, emulator)
    index = stack.physical[INDEX]
    status, with_parameter = search(emulator, HYBRID, f"?search_pipeline={NAME}")
    assert status == 200
    status, neural_before = search(emulator, NEURAL)
    assert status == 200
    status, body = search(emulator, HYBRID)
    assert status == 400, "no default yet: a hybrid query needs the parameter"

    stack.props[INDEX]["DefaultSearchPipeline"] = NAME
    before = len(settings_calls(emulator))
    result = update_index(stack)
    assert result.physical_id == index, "in place: same index, no copy"
    assert not [c for c in emulator.calls() if c[2] == "/_reindex"]
    assert emulator.indices[index].settings[SETTING] == NAME
    assert len(settings_calls(emulator)) == before + 1
    status, body = search(emulator, HYBRID)
    assert status == 200
    assert body["hits"]["hits"] == with_parameter["hits"]["hits"]
    assert body["hits"]["hits"][0]["_id"] == "d3"
    status, neural_after = search(emulator, NEURAL)
    assert status == 200
    assert neural_after["hits"]["hits"] == neural_before["hits"]["hits"], "skipped: not hybrid"
    # ?search_pipeline=_none still opts out of the default.
    status, _ = search(emulator, HYBRID, "?search_pipeline=_none")
    assert status == 400

    del stack.props[INDEX]["DefaultSearchPipeline"]
    result = update_index(stack)
    assert result.physical_id == index
    assert SETTING not in emulator.indices[index].settings
    status, _ = search(emulator, HYBRID)
    assert status == 400


def test_an_unchanged_default_sends_no_settings_update(
    stack: Stack, emulator: SearchEmulator
) -> None:
    filled(stack, emulator)
    stack.props[INDEX]["DefaultSearchPipeline"] = NAME
    update_index(stack)
    before = len(settings_calls(emulator))
    stack.props[INDEX]["NumberOfReplicas"] = 0  # unchanged: a no-op update
    stack.props[INDEX]["MigrationBudgetSeconds"] = 2000  # changed, but not the setting
    update_index(stack)
    assert len(settings_calls(emulator)) == before


def test_a_replacement_index_is_created_with_the_default(
    stack: Stack, emulator: SearchEmulator
) -> None:
    filled(stack, emulator)
    stack.props[INDEX]["DefaultSearchPipeline"] = NAME
    update_index(stack)
    old = stack.physical[INDEX]
    stack.props[INDEX]["NumberOfShards"] = 2
    result = update_index(stack)
    assert result.physical_id != old
    assert emulator.indices[result.physical_id].settings[SETTING] == NAME
    status, body = search(emulator, HYBRID)
    assert status == 200 and body["hits"]["hits"][0]["_id"] == "d3"


def test_a_renamed_pipeline_is_followed_in_place_before_the_old_one_goes(
    stack: Stack, emulator: SearchEmulator
) -> None:
    """CloudFormation's order: new pipeline, index update, then cleanup of the old pipeline."""
    filled(stack, emulator)
    stack.props[INDEX]["DefaultSearchPipeline"] = NAME
    update_index(stack)
    renamed = pipeline_props(stack, Name="documents-hybrid-v2")
    result = stack.provider.send(
        "Update", PIPELINE, renamed, physical_id=NAME, old_props=pipeline_props(stack)
    )
    assert result.status == "SUCCESS"
    stack.props[INDEX]["DefaultSearchPipeline"] = "documents-hybrid-v2"
    update_index(stack)
    cleanup = stack.provider.send("Delete", PIPELINE, pipeline_props(stack), physical_id=NAME)
    assert cleanup.status == "SUCCESS"
    status, body = search(emulator, HYBRID)
    assert status == 200 and body["hits"]["hits"][0]["_id"] == "d3"


def test_a_default_pipeline_deleted_behind_cloudformation_fails_searches_until_restored(
    stack: Stack, emulator: SearchEmulator
) -> None:
    """Inferred from core's pipeline resolution (emulator: default search pipeline section):
    why the index names the pipeline by attribute, and why an update restores it."""
    filled(stack, emulator)
    stack.props[INDEX]["DefaultSearchPipeline"] = NAME
    update_index(stack)
    del emulator.pipelines[NAME]
    status, body = search(emulator, NEURAL)
    assert status == 404 and NAME in body["error"]["reason"]
    result = stack.provider.send(
        "Update", PIPELINE, pipeline_props(stack), physical_id=NAME, old_props=pipeline_props(stack)
    )
    assert result.status == "SUCCESS"
    status, _ = search(emulator, NEURAL)
    assert status == 200


@pytest.mark.parametrize("value", ["documents-*", "a,b", "_none", "Upper"])
def test_a_pipeline_name_that_is_not_ours_is_refused(stack: Stack, value: str) -> None:
    stack.props[INDEX]["DefaultSearchPipeline"] = value
    results = stack.create()
    assert results[INDEX].status == "FAILED"
    assert "DefaultSearchPipeline" in results[INDEX].reason
