"""Index replacements and embedding-identity changes keep every document, re-embedded.

Each test fills the index through the alias (as an application would), changes
one property, runs CloudFormation's Update (and its cleanup), and checks that
the documents before equal the documents after, each with a vector from the
new model, and that the alias moved only after the copy was verified.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ml_setup.conftest import CLIENT, IDENTITY, MASTER, Stack
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_lifecycle import INDEX, MODEL, created, record_alias_requests
from tests.support.opensearch_emulator import (
    ApiError,
    OpenSearchEmulator,
    Request,
    hashing_embedder,
)

TEXTS = {str(i): f"document number {i} about topic {i % 7}" for i in range(60)}


@pytest.fixture
def filled(stack: Stack, emulator: OpenSearchEmulator) -> Stack:
    stack.props[INDEX].update(
        EmbeddingIdentity=dict(IDENTITY),
        ReindexDocsPerSecond=50,
        MigrationBudgetSeconds=2100,
        EnvironmentName="dev",
    )
    created(stack)
    emulator.reindex_docs_per_poll = 25
    for doc_id, text in TEXTS.items():
        status, _ = signed_request(
            emulator, CLIENT, "PUT", f"/documents/_doc/{doc_id}", {"passage_text": text}
        )
        assert status == 201
    return stack


def set_identity(stack: Stack, key: str, value: Any) -> None:
    # A new object: the applied (old) properties must keep the old identity.
    stack.props[INDEX]["EmbeddingIdentity"] = {
        **stack.props[INDEX]["EmbeddingIdentity"],
        key: value,
    }


def salted(salt: str):  # type: ignore[no-untyped-def]
    """The endpoint after a redeploy with other weights: same config, different vectors."""

    def embed(texts: list[str], content_type: str, model: dict[str, Any]) -> list[list[float]]:
        return hashing_embedder([f"{salt} {t}" for t in texts], content_type, model)

    return embed


def assert_all_reembedded(stack: Stack, emulator: OpenSearchEmulator, dimension: int) -> None:
    index = stack.physical[INDEX]
    docs = emulator.indices[index].docs
    assert set(docs) == set(TEXTS), "documents before = documents after"
    model = emulator.models[stack.physical[MODEL]]
    for doc_id, doc in docs.items():
        assert doc["passage_text"] == TEXTS[doc_id]
        info = doc["passage_text_semantic_info"]
        assert info["model"]["id"] == stack.physical[MODEL]
        assert len(info["embedding"]) == dimension
        (expected,) = emulator.embedder([TEXTS[doc_id]], "passage", model)
        assert info["embedding"] == expected, f"document {doc_id} keeps an old vector"
    assert emulator.aliases == {"documents": {index: {}}}
    assert emulator.indices[index].mappings["_meta"]["migration"]["state"] == "complete"


def update_and_check(stack: Stack, emulator: OpenSearchEmulator, dimension: int = 384) -> None:
    old_index = stack.physical[INDEX]
    aliases = record_alias_requests(emulator)
    results = stack.update()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    assert results[INDEX].polls >= 2, "is_complete waited for the copy task"
    assert stack.physical[INDEX] != old_index
    assert old_index not in emulator.indices, "CloudFormation's cleanup deleted the old index"
    # One atomic move, after the copy (the alias requests happen in the last poll).
    assert len(aliases) == 1
    assert_all_reembedded(stack, emulator, dimension)
    reindex = [c for c in emulator.calls() if c[2] == "/_reindex"]
    assert len(reindex) == 1 and reindex[0][3] == 200


@pytest.mark.parametrize(
    ("kinds", "key", "value", "dimension"),
    [
        ((MODEL, INDEX), "EmbeddingDimension", 768, 768),
        ((MODEL, INDEX), "SpaceType", "innerproduct", 384),
        ((INDEX,), "NumberOfShards", 3, 384),
        ((INDEX,), "FieldName", None, 384),  # handled below
    ],
    ids=["dimension", "space_type", "shards", "raw_field_type"],
)
def test_each_replacing_property_keeps_every_document_reembedded(
    kinds: tuple[str, ...],
    key: str,
    value: Any,
    dimension: int,
    filled: Stack,
    emulator: OpenSearchEmulator,
) -> None:
    if key == "FieldName":
        filled.props[INDEX]["RawFieldType"] = "match_only_text"
    else:
        for kind in kinds:
            filled.props[kind][key] = value
        if key in IDENTITY:
            set_identity(filled, key, value)
    update_and_check(filled, emulator, dimension)


@pytest.mark.parametrize(
    ("key", "value"),
    [("ModelRevision", "0" * 40), ("ModelId", "intfloat/multilingual-e5-base"),
     ("Pooling", "cls"), ("Normalize", False)],
)  # fmt: skip
def test_an_identity_change_on_the_endpoint_lands_in_a_new_index(
    key: str, value: Any, filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """Same model config in OpenSearch, new weights behind the endpoint: no mixed vectors."""
    set_identity(filled, key, value)
    emulator.embedder = salted(f"{key}={value}")
    update_and_check(filled, emulator)


def test_a_prefix_change_registers_a_new_model_and_reembeds_into_a_new_index(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    filled.props[MODEL]["QueryPrefix"] = "search_query: "
    filled.props[MODEL]["PassagePrefix"] = "search_document: "
    set_identity(filled, "QueryPrefix", "search_query: ")
    set_identity(filled, "PassagePrefix", "search_document: ")
    old_model = filled.physical[MODEL]
    update_and_check(filled, emulator)
    assert filled.physical[MODEL] != old_model


@pytest.mark.parametrize("fault", ["endpoint_5xx", "task_dies"])
def test_a_copy_that_fails_part_way_leaves_the_alias_and_old_index(
    fault: str, filled: Stack, emulator: OpenSearchEmulator
) -> None:
    old_index = filled.physical[INDEX]
    before = {k: dict(v) for k, v in emulator.indices[old_index].docs.items()}
    if fault == "endpoint_5xx":
        emulator.reindex_failing_docs = {"37", "38"}
    else:
        emulator.reindex_task_dies = "node emulated-node-1 left the cluster"
    filled.props[INDEX]["NumberOfShards"] = 2
    results = filled.update()
    result = results[INDEX]
    assert result.status == "FAILED"
    if fault == "endpoint_5xx":
        assert "2 failed, first (id 37, status 500): status_exception" in result.reason
    else:
        assert "node_closed_exception: node emulated-node-1 left the cluster" in result.reason
    assert "alias unchanged" in result.reason and "\n" not in result.reason
    assert len(result.reason) < 1000
    assert emulator.aliases == {"documents": {old_index: {}}}
    assert emulator.indices[old_index].docs == before, "old index intact"
    # The failed update's new index is gone already; CloudFormation's rollback Delete
    # of that id (the waiter reports the new physical id) then finds nothing.
    assert [i for i in emulator.indices if i.startswith("documents-")] == [old_index]
    rollback_delete = filled.provider.send(
        "Delete", INDEX, filled.resolved(INDEX), physical_id=result.physical_id
    )
    assert rollback_delete.status == "SUCCESS"
    assert list(emulator.indices) == [old_index]
    assert "index.blocks.write" not in emulator.indices[old_index].settings or (
        emulator.indices[old_index].settings["index.blocks.write"] == "false"
    ), "writes are accepted again"
    status, _ = signed_request(
        emulator, CLIENT, "PUT", "/documents/_doc/after", {"passage_text": "still writable"}
    )
    assert status == 201


def test_a_retained_half_copy_is_deleted_by_the_rollback(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """RetainOnDelete keeps real indexes, never a partial copy left by a failed migration."""
    old_index = filled.physical[INDEX]
    filled.props[INDEX]["RetainOnDelete"] = True
    filled.props[INDEX]["NumberOfShards"] = 2
    new_name = ""
    original = emulator._tasks_get

    def dies(request, task_id):  # type: ignore[no-untyped-def]
        nonlocal new_name
        new_name = emulator.reindex_tasks[task_id]["dest"]
        emulator.reindex_task_dies = "killed"
        # The handler's own cleanup of the new index fails too (a 403 until it gives up).
        emulator.faults.add(10_000, 403, {"message": "denied"}, path_prefix=f"/{new_name}")
        return original(request, task_id)

    emulator._tasks_get = dies  # type: ignore[method-assign]
    result = filled.update()[INDEX]
    emulator._tasks_get = original  # type: ignore[method-assign]
    emulator.faults._rules.clear()
    assert result.status == "FAILED" and "killed" in result.reason
    assert new_name in emulator.indices, "the half copy survived the handler's cleanup"
    assert emulator.aliases == {"documents": {old_index: {}}}
    # CloudFormation's rollback: Delete for the physical id the waiter reported.
    assert result.physical_id == new_name
    rollback = filled.provider.send(
        "Delete", INDEX, filled.resolved(INDEX), physical_id=result.physical_id
    )
    assert rollback.status == "SUCCESS", rollback.reason
    assert list(emulator.indices) == [old_index], "no orphan index, RetainOnDelete or not"


def test_writes_during_the_copy_are_refused_not_lost(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """The rule: the old index is write-blocked during the copy; nothing accepted is dropped."""
    refused: list[int] = []
    original = emulator._tasks_get

    def write_while_copying(request, task_id):  # type: ignore[no-untyped-def]
        # In-process through the emulator's front door (routing, FGAC, alias
        # resolution): an HTTP call from here would wait on the emulator's lock.
        write = Request(CLIENT.arn, "PUT", "/documents/_doc/during", {}, {"passage_text": "late"})
        try:
            refused.append(emulator.handle(write).status)
        except ApiError as error:
            refused.append(error.status)
        return original(request, task_id)

    emulator._tasks_get = write_while_copying  # type: ignore[method-assign]
    filled.props[INDEX]["NumberOfShards"] = 2
    emulator.reindex_docs_per_poll = 30
    results = filled.update()
    emulator._tasks_get = original  # type: ignore[method-assign]
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    assert refused and set(refused) == {403}, "writes during the copy are refused (retryable)"
    assert_all_reembedded(filled, emulator, 384)
    status, _ = signed_request(
        emulator, CLIENT, "PUT", "/documents/_doc/during", {"passage_text": "late"}
    )
    assert status == 201, "after the switch writes go to the new index"
    assert "during" in emulator.indices[filled.physical[INDEX]].docs


def test_the_estimate_refuses_a_copy_longer_than_the_deployment_may_wait(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    old_index = filled.physical[INDEX]
    filled.props[INDEX]["ReindexDocsPerSecond"] = 1
    filled.props[INDEX]["MigrationBudgetSeconds"] = 30
    filled.props[INDEX]["NumberOfShards"] = 2
    result = filled.update()[INDEX]
    assert result.status == "FAILED"
    assert "re-embedding 60 documents" in result.reason
    assert "at 1 docs/s takes about 60 s, more than the 30 s" in result.reason
    assert "python -m tools.migrate --env dev" in result.reason
    assert list(emulator.indices) == [old_index]
    assert not [c for c in emulator.calls() if c[2] == "/_reindex"]


def test_the_setup_role_may_reindex_only_this_apps_indexes(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """_reindex is checked as a cluster permission and then on source and destination."""
    status, _ = signed_request(
        emulator, MASTER, "PUT", "/other", {"settings": {"index": {"number_of_shards": 1}}}
    )
    assert status == 200
    from tests.ml_setup.conftest import SETUP

    status, body = signed_request(
        emulator, SETUP, "POST", "/_reindex",
        {"source": {"index": filled.physical[INDEX]}, "dest": {"index": "other"}},
    )  # fmt: skip
    assert status == 403 and "indices:data/write/bulk[s]" in body["error"]["reason"]
    status, body = signed_request(
        emulator, CLIENT, "POST", "/_reindex",
        {"source": {"index": filled.physical[INDEX]}, "dest": {"index": "documents"}},
    )  # fmt: skip
    assert status == 403 and "indices:data/write/reindex" in body["error"]["reason"]
