"""Index replacements and embedding-identity changes keep every document, re-embedded.

Each test fills the index through the alias (as an application would), changes
one property, runs CloudFormation's Update (and its cleanup), and checks that
the documents before equal the documents after, each with a vector from the
new model, and that the alias moved only after the copy was verified. The
live-write tests (LiveClient) also write, update and delete through the alias
while the copy runs, and check that every accepted change is in the new index.
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


class LiveClient:
    """An application writing through the alias while the copy runs, as real clients do.

    It issues its scripted writes at given ``GET _tasks`` polls (the emulator
    advances a reindex task by one step per poll, so a write lands between two
    steps of the copy), in-process through the emulator's front door (routing,
    FGAC, alias resolution: an HTTP call from inside a handler would wait on the
    emulator's lock). ``expected`` is what the client believes the index holds
    after every write it was told succeeded; a refused write is kept for a retry,
    never counted as written.
    """

    def __init__(self, emulator: OpenSearchEmulator, script: dict[int, list[tuple]]) -> None:
        self.emulator = emulator
        self.script = script
        self.expected: dict[str, str] = dict(TEXTS)
        self.polls = 0
        self.refused: list[tuple[int, int, str]] = []  # (script key, status, error type)
        self.retry: list[tuple] = []
        self.source = ""
        self._original = emulator._tasks_get
        emulator._tasks_get = self._poll  # type: ignore[method-assign]

    def stop(self) -> None:
        self.emulator._tasks_get = self._original  # type: ignore[method-assign]

    def _poll(self, request: Request, task_id: str) -> Any:
        self.polls += 1
        self.source = self.source or self.emulator.reindex_tasks[task_id]["source"]
        for action in self.script.get(self.polls, []):
            self.write(*action, key=self.polls)
        if self.blocked():
            for action in self.script.pop(-1, []):  # writes attempted during the block
                self.write(*action, key=-1)
        return self._original(request, task_id)

    def blocked(self) -> bool:
        state = self.emulator.indices.get(self.source)
        return bool(state) and state.settings.get("index.blocks.write") == "true"

    def write(self, method: str, doc_id: str, text: str | None = None, key: int = 0) -> int:
        body = {"passage_text": text} if method == "PUT" else None
        request = Request(CLIENT.arn, method, f"/documents/_doc/{doc_id}", {}, body)
        try:
            status, error = self.emulator.handle(request).status, ""
        except ApiError as exc:
            status, error = exc.status, exc.error_type
        if status in (200, 201) or (method == "DELETE" and status == 404):
            if method == "PUT":
                self.expected[doc_id] = str(text)
            else:
                self.expected.pop(doc_id, None)
        else:
            self.refused.append((key, status, error))
            self.retry.append((method, doc_id, text))
        return status

    def retry_all(self) -> None:
        pending, self.retry = self.retry, []
        for action in pending:
            assert self.write(*action) in (200, 201), f"retry of {action} after the move"


def assert_new_index_holds(
    stack: Stack, emulator: OpenSearchEmulator, expected: dict[str, str], dimension: int
) -> None:
    """Exactly ``expected`` (ids and texts), every vector the new model's for that text."""
    index = stack.physical[INDEX]
    docs = emulator.indices[index].docs
    assert sorted(docs) == sorted(expected), "written, updated and deleted documents all kept"
    model = emulator.models[stack.physical[MODEL]]
    for doc_id, doc in docs.items():
        assert doc["passage_text"] == expected[doc_id], f"document {doc_id} lost an update"
        info = doc["passage_text_semantic_info"]
        assert info["model"]["id"] == stack.physical[MODEL], f"{doc_id} from the old model"
        assert len(info["embedding"]) == dimension
        (vector,) = emulator.embedder([expected[doc_id]], "passage", model)
        assert info["embedding"] == vector, f"document {doc_id} keeps a stale vector"
    assert emulator.aliases == {"documents": {index: {}}}


# Writes, updates and deletes at given polls of the copy (see LiveClient): the copy
# takes three polls (25 documents a poll); -1 is "while the old index is blocked".
LIVE_SCRIPT: dict[int, list[tuple]] = {
    1: [("PUT", "new-1", "created during the copy"), ("PUT", "3", "document 3 rewritten"),
        ("DELETE", "5")],
    2: [("PUT", "new-2", "another one"), ("DELETE", "new-1"), ("PUT", "10", "ten, edited")],
    3: [("PUT", "3", "document 3 rewritten twice"), ("PUT", "new-3", "third new")],
    4: [("PUT", "20", "twenty, edited during the first catch-up round")],
    -1: [("PUT", "blocked", "written during the final block"), ("DELETE", "30")],
}  # fmt: skip


def test_writes_updates_and_deletes_during_the_copy_are_all_kept(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """The alias stays on the old index and takes writes; catch-up rounds copy them.

    At 2 docs/s with a 1 s write block allowed, the four documents changed during
    the copy need an unblocked catch-up round; the one changed during that round
    fits in the block. A write during the block gets the block's 403 and is
    retried after the move; nothing a client was told was written is lost.
    """
    filled.props[INDEX].update(ReindexDocsPerSecond=2, WriteBlockSeconds=1)
    filled.props[MODEL]["EmbeddingDimension"] = 768
    filled.props[INDEX]["EmbeddingDimension"] = 768
    set_identity(filled, "EmbeddingDimension", 768)
    old_index = filled.physical[INDEX]
    live = LiveClient(emulator, {k: list(v) for k, v in LIVE_SCRIPT.items()})
    try:
        results = filled.update()
    finally:
        live.stop()
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    assert not [r for r in live.refused if r[0] != -1], (
        f"writes while the copy and the unblocked round ran were refused: {live.refused}"
    )
    assert live.refused == [(-1, 403, "cluster_block_exception")] * 2, (
        "the writes during the final block get the block error (retryable), nothing else"
    )
    reindex = [c for c in emulator.calls() if c[2] == "/_reindex"]
    assert len(reindex) == 3, "the copy, one unblocked catch-up round, the final round"
    live.retry_all()
    assert "blocked" in live.expected and "30" not in live.expected
    assert_new_index_holds(filled, emulator, live.expected, 768)
    assert old_index not in emulator.indices
    assert emulator.ingest_pipelines == {}, "the stamping pipeline is removed"


def test_a_write_block_too_long_for_the_changes_refuses_with_the_figures(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """Writers faster than the endpoint: no round converges, the copy is refused, not forced."""
    filled.props[INDEX].update(ReindexDocsPerSecond=1, WriteBlockSeconds=1)
    filled.props[INDEX]["NumberOfShards"] = 2
    old_index = filled.physical[INDEX]
    busy = {n: [("PUT", f"busy-{n}-{k}", f"bulk load {n} {k}") for k in range(3)]
            for n in range(1, 40)}  # fmt: skip
    live = LiveClient(emulator, busy)
    try:
        result = filled.update()[INDEX]
    finally:
        live.stop()
    assert result.status == "FAILED"
    assert "writes outpace the copy" in result.reason and "after 5 catch-up rounds" in result.reason
    assert "alias unchanged" in result.reason and len(result.reason) <= 400
    assert emulator.aliases == {"documents": {old_index: {}}}
    assert [i for i in emulator.indices if i.startswith("documents-")] == [old_index]
    assert set(live.expected) <= set(emulator.indices[old_index].docs), "accepted writes kept"
    assert not live.refused, "no write was refused: the block never started"


def test_a_failing_catch_up_leaves_the_alias_on_the_old_index_and_it_writable(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """A document written during the copy that the endpoint refuses fails the final round."""
    old_index = filled.physical[INDEX]
    filled.props[INDEX]["NumberOfShards"] = 2
    emulator.reindex_failing_docs = {"late-bad"}
    live = LiveClient(emulator, {1: [("PUT", "late-bad", "a text the endpoint refuses")]})
    try:
        result = filled.update()[INDEX]
    finally:
        live.stop()
    assert result.status == "FAILED"
    assert "(id late-bad, status 500)" in result.reason and "alias unchanged" in result.reason
    assert emulator.aliases == {"documents": {old_index: {}}}
    assert [i for i in emulator.indices if i.startswith("documents-")] == [old_index]
    old = emulator.indices[old_index]
    assert old.docs["late-bad"]["passage_text"] == "a text the endpoint refuses", "write kept"
    assert old.settings.get("index.blocks.write") != "true"
    assert old.settings.get("index.default_pipeline", "_none") == "_none"
    assert emulator.ingest_pipelines == {}
    assert all(t["completed"] for t in emulator.reindex_tasks.values()), "no task left running"
    status, _ = signed_request(
        emulator, CLIENT, "PUT", "/documents/_doc/after", {"passage_text": "still writable"}
    )
    assert status == 201
    assert "migration_generation" not in emulator.indices[old_index].docs["after"]


def test_a_timed_out_copy_cancels_its_task_before_deleting_the_new_index(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """A task left running after the deadline would recreate the deleted index (auto-create)."""
    old_index = filled.physical[INDEX]
    filled.props[INDEX]["NumberOfShards"] = 2
    emulator.reindex_docs_per_poll = 0  # a stalled endpoint: the task outlives the wait
    result = filled.update()[INDEX]
    assert result.status == "FAILED" and "did not finish in time" in result.reason
    ((task_id, task),) = emulator.reindex_tasks.items()
    assert task["canceled"] == "by user request", "the copy's task was cancelled"
    calls = [(c[1], c[2].replace("%3A", ":")) for c in emulator.calls()]
    cancel = calls.index(("POST", f"/_tasks/{task_id}/_cancel"))
    assert cancel < calls.index(("DELETE", f"/{task['dest']}")), "cancelled before the delete"
    # The server would go on running an uncancelled task: look at it again, with work to do.
    emulator.reindex_docs_per_poll = 50
    status, body = signed_request(emulator, MASTER, "GET", f"/_tasks/{task_id}")
    assert status == 200 and body["completed"]
    assert body["response"]["canceled"] == "by user request"
    assert [i for i in emulator.indices if i.startswith("documents-")] == [old_index], (
        "no index recreated by the task's bulk writes"
    )


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


def test_a_rollback_delete_of_a_running_copy_cancels_its_task(
    filled: Stack, emulator: OpenSearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """is_complete dies (Lambda timeout, a bug): the rollback's Delete still stops the task."""
    from ml_setup import semantic_index

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Lambda timed out")

    old_index = filled.physical[INDEX]
    filled.props[INDEX]["NumberOfShards"] = 2
    monkeypatch.setattr(semantic_index, "poll", crash)
    result = filled.update()[INDEX]
    monkeypatch.undo()
    assert result.status == "FAILED"
    ((task_id, task),) = emulator.reindex_tasks.items()
    assert not task["completed"] and result.physical_id == task["dest"]
    rollback = filled.provider.send(
        "Delete", INDEX, filled.resolved(INDEX), physical_id=result.physical_id
    )
    assert rollback.status == "SUCCESS", rollback.reason
    assert task["canceled"] == "by user request"
    status, body = signed_request(emulator, MASTER, "GET", f"/_tasks/{task_id}")
    assert status == 200 and body["response"]["canceled"] == "by user request"
    assert [i for i in emulator.indices if i.startswith("documents-")] == [old_index]
    old = emulator.indices[old_index]
    assert old.settings.get("index.default_pipeline", "_none") == "_none", "stamping stopped"
    assert old.settings.get("index.blocks.write") != "true" and emulator.ingest_pipelines == {}


def test_stamps_left_by_an_earlier_migration_do_not_count_in_the_next(
    filled: Stack, emulator: OpenSearchEmulator
) -> None:
    """Documents written during one migration keep their stamp; the next one starts above it."""
    filled.props[INDEX].update(ReindexDocsPerSecond=2, WriteBlockSeconds=1)
    filled.props[INDEX]["NumberOfShards"] = 2
    script = {1: [("PUT", f"w{k}", f"written during the first copy {k}") for k in range(4)]}
    live = LiveClient(emulator, script)
    try:
        assert filled.update()[INDEX].status == "SUCCESS"
    finally:
        live.stop()
    first = len([c for c in emulator.calls() if c[2] == "/_reindex"])
    stamped = [d for d in emulator.indices[filled.physical[INDEX]].docs.values()
               if "migration_generation" in d]  # fmt: skip
    assert len(stamped) == 4, "the first migration's writes carry its stamp into the new index"
    filled.props[INDEX]["NumberOfShards"] = 3
    assert filled.update()[INDEX].status == "SUCCESS"
    second = len([c for c in emulator.calls() if c[2] == "/_reindex"]) - first
    assert second == 1, "nothing written during the second copy: no catch-up round"
    assert_new_index_holds(filled, emulator, live.expected, 384)
