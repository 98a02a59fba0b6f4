"""tools.migrate: a copy too long for CloudFormation, done outside it and adopted after.

The flow a user sees: the deploy refuses the copy with the estimate and the
command in the reason; ``python -m tools.migrate`` copies (killed and resumed
in the middle here); the next deploy's Update adopts the copy with no
``_reindex`` and its cleanup deletes the old index. Runs against the same
emulated domain and CloudFormation stand-in as tests/ml_setup, the tool signing
as the master role like the real command.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

from tests.ml_setup.conftest import (  # noqa: F401 - fixtures
    MASTER,
    REGION,
    Stack,
    assumed,
    clock,
    emulator,
    provider,
    runtime,
    stack,
)
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_lifecycle import INDEX
from tests.ml_setup.test_migration import (  # noqa: F401 - filled is a fixture
    LIVE_SCRIPT,
    TEXTS,
    LiveClient,
    assert_all_reembedded,
    assert_new_index_holds,
    filled,
)
from tests.support.opensearch_emulator import OpenSearchEmulator
from tools.migrate import Migration, MigrationFailed
from tools.opensearch import SignedHttpClient


class Killed(BaseException):
    """What Ctrl-C or a lost terminal does to the command: it stops between two polls."""


class Bar:
    """A progress bar that records what it was told (tqdm's interface, the part used)."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.closed, self.seen = total, 0, False, [0]

    def update(self, k: int) -> None:
        self.n += k
        self.seen.append(self.n)

    def reset(self) -> None:
        self.n = 0

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def tool(domain: OpenSearchEmulator, *, kill_after: int | None = None) -> Migration:
    creds = ReadOnlyCredentials(MASTER.access_key, MASTER.secret_key, MASTER.session_token)
    client = SignedHttpClient(domain.endpoint, REGION, lambda: creds, timeout=10)
    polls = {"n": 0}

    def sleep(_: float) -> None:
        polls["n"] += 1
        if kill_after is not None and polls["n"] >= kill_after:
            raise Killed

    migration = Migration(client, "documents", poll_seconds=0, sleep=sleep, progress=Bar)
    migration.bars = []  # type: ignore[attr-defined]

    def progress(total: int) -> Bar:
        bar = Bar(total)
        migration.bars.append(bar)  # type: ignore[attr-defined]
        return bar

    migration.progress = progress
    return migration


def migrate_and_adopt(deployed: Stack, domain: OpenSearchEmulator) -> None:
    """tools.migrate copies every document, then the next deploy adopts its copy."""
    result = tool(domain).run()
    assert result is not None and result.documents == len(TEXTS)
    assert deployed.update()[INDEX].status == "SUCCESS"
    assert_all_reembedded(deployed, domain, 384)


def refuse(deployed: Stack) -> tuple[str, Any]:
    """A shard change on 60 documents at 1 doc/s with a 30 s budget: refused by the estimate."""
    old_index = deployed.physical[INDEX]
    deployed.props[INDEX]["ReindexDocsPerSecond"] = 1
    deployed.props[INDEX]["MigrationBudgetSeconds"] = 30
    deployed.props[INDEX]["NumberOfShards"] = 2
    return old_index, deployed.update()[INDEX]


def reindex_calls(domain: OpenSearchEmulator) -> list[Any]:
    return [c for c in domain.calls() if c[2] == "/_reindex"]


def test_refused_copy_is_migrated_with_a_kill_and_resume_then_adopted_by_the_deploy(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    old_index, refused = refuse(filled)
    assert refused.status == "FAILED"
    assert "re-embedding 60 documents" in refused.reason
    assert "takes about 60 s, more than the 30 s" in refused.reason
    assert "python -m tools.migrate --env dev" in refused.reason
    assert "\n" not in refused.reason and len(refused.reason) <= 400
    assert list(emulator.indices) == [old_index] and not reindex_calls(emulator)
    assert emulator.indices[old_index].docs.keys() == TEXTS.keys()

    # The command, killed after two polls of a copy that takes three (25 documents a poll).
    emulator.reindex_docs_per_poll = 25
    first = tool(emulator, kill_after=2)
    with pytest.raises(Killed):
        first.run()
    (target,) = [i for i in emulator.indices if i != old_index]
    assert 0 < len(emulator.indices[target].docs) < len(TEXTS), "killed in the middle"
    migration = emulator.indices[target].mappings["_meta"]["migration"]
    assert migration["state"] == "copying" and migration["task"]
    assert emulator.aliases == {"documents": {old_index: {}}}, "alias not moved by a half copy"
    status, _ = signed_request(
        emulator, MASTER, "PUT", "/documents/_doc/late", {"passage_text": "while killed"}
    )
    assert status == 201, "writes stay open while the command is stopped (stamped, caught up)"

    # Resumed: the same task is polled to the end, not a second copy; the write made
    # while it was stopped is copied by the catch-up round.
    second = tool(emulator)
    result = second.run()
    assert result is not None and result.target == target
    assert result.documents == len(TEXTS) + 1
    assert emulator.indices[target].docs["late"]["passage_text"] == "while killed"
    assert 0 < result.copied < len(TEXTS), "docs/s counts what this run copied"
    print(f"tools.migrate resumed against the emulator: {result.docs_per_second:.0f} docs/s")
    calls = reindex_calls(emulator)
    assert len(calls) == 2, "resume re-attached to the running task; one catch-up round"
    assert second.bars[0].total == len(TEXTS) + 1 and second.bars[0].n == len(TEXTS) + 1
    assert second.bars[0].closed
    assert emulator.aliases == {"documents": {target: {}}}
    assert emulator.indices[target].mappings["_meta"]["migration"]["state"] == "complete"

    status, _ = signed_request(
        emulator, MASTER, "PUT", "/documents/_doc/late", {"passage_text": "after the move"}
    )
    assert (
        status == 200 and emulator.indices[target].docs["late"]["passage_text"] == "after the move"
    )
    del emulator.indices[target].docs["late"]

    # The deploy again: the Update adopts the copy (no _reindex), the cleanup deletes the old.
    results = filled.update()
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    assert results[INDEX].physical_id == target
    assert len(reindex_calls(emulator)) == 2, "the deploy made no copy of its own"
    assert old_index not in emulator.indices
    assert_all_reembedded(filled, emulator, 384)
    assert tool(emulator).run() is None, "a second run has nothing to do"


def test_a_lost_task_is_started_again_into_the_same_index(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    old_index, _ = refuse(filled)
    emulator.reindex_docs_per_poll = 25
    with pytest.raises(Killed):
        tool(emulator, kill_after=1).run()
    emulator.reindex_tasks.clear()  # the node restarted: GET _tasks/<id> answers 404
    result = tool(emulator).run()
    assert result is not None and result.documents == len(TEXTS)
    assert len(reindex_calls(emulator)) == 2
    assert emulator.aliases == {"documents": {result.target: {}}}
    assert filled.update()[INDEX].status == "SUCCESS"
    assert_all_reembedded(filled, emulator, 384)
    assert old_index not in emulator.indices


def test_a_failed_copy_leaves_the_alias_and_can_be_rerun(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    old_index, _ = refuse(filled)
    emulator.reindex_failing_docs = {"7"}
    with pytest.raises(MigrationFailed, match=r"; 1 failed, first \(id 7, status 500\)"):
        tool(emulator).run()
    assert emulator.aliases == {"documents": {old_index: {}}}
    assert list(emulator.indices) == [old_index], "the half copy is deleted"
    status, _ = signed_request(
        emulator, MASTER, "PUT", "/documents/_doc/after", {"passage_text": "writable"}
    )
    assert status == 201, "the write block is lifted on failure"
    emulator.reindex_failing_docs = set()
    result = tool(emulator).run()
    assert result is not None and result.documents == len(TEXTS) + 1, "rerun copies it too"
    assert result.copied == len(TEXTS) + 1
    print(f"tools.migrate against the emulator: {result.docs_per_second:.0f} docs/s")
    assert "after" in emulator.indices[result.target].docs


def test_nothing_to_migrate_is_said_in_one_line(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    from tools.smoke import SetupError

    with pytest.raises(SetupError, match=r"^index documents-[0-9a-f]{8} has no pending migration"):
        tool(emulator).run()


def test_the_deploy_does_not_adopt_a_copy_of_another_identity(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    _, _ = refuse(filled)
    result = tool(emulator).run()
    assert result is not None
    meta = emulator.indices[result.target].mappings["_meta"]
    meta["migration"]["identity"] = {**meta["migration"]["identity"], "ModelRevision": "f" * 40}
    update = filled.update()[INDEX]
    assert update.status == "FAILED"
    assert "was copied for another embedding identity" in update.reason


def test_a_copy_slower_than_estimated_names_the_command_which_then_completes_it(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    """Estimated to fit, but the endpoint is slower: past the deadline, the same way out."""
    old_index = filled.physical[INDEX]
    filled.props[INDEX]["NumberOfShards"] = 2
    emulator.reindex_docs_per_poll = 0  # a stalled endpoint: the task runs past the wait
    result = filled.update()[INDEX]
    assert result.status == "FAILED", result.reason
    assert "did not finish in time; alias unchanged" in result.reason
    assert "python -m tools.migrate --env dev" in result.reason
    assert emulator.aliases == {"documents": {old_index: {}}}
    emulator.reindex_docs_per_poll = 25
    migrate_and_adopt(filled, emulator)


def test_a_deploy_during_the_command_leaves_its_copy_alone(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    """A deploy while tools.migrate is stopped mid-copy refuses; the copy is resumed after."""
    old_index, _ = refuse(filled)
    emulator.reindex_docs_per_poll = 25
    with pytest.raises(Killed):
        tool(emulator, kill_after=1).run()
    (target,) = [i for i in emulator.indices if i != old_index]
    copied = dict(emulator.indices[target].docs)
    update = filled.update()[INDEX]
    assert update.status == "FAILED"
    assert f"python -m tools.migrate is copying into {target}" in update.reason
    assert emulator.indices[target].docs == copied, "the command's copy is untouched"
    assert not [c for c in emulator.calls() if c[1] == "DELETE" and c[2] == f"/{target}"]
    migrate_and_adopt(filled, emulator)


def test_a_plan_whose_model_is_gone_stops_before_touching_anything(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    """A refused deploy that also registered a new model has that model rolled back."""
    old_index, _ = refuse(filled)
    plan = emulator.indices[old_index].mappings["_meta"]["pending_migration"]
    plan["model_id"] = "rolled-back-model"
    with pytest.raises(MigrationFailed, match=r"^model rolled-back-model of the plan no longer"):
        tool(emulator).run()
    assert list(emulator.indices) == [old_index]
    assert emulator.indices[old_index].settings.get("index.blocks.write") != "true"


def test_writes_during_the_command_are_kept_and_caught_up(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    """The same catch-up as the deployment's copy: writes, updates and deletes interleaved."""
    old_index, _ = refuse(filled)
    plan = emulator.indices[old_index].mappings["_meta"]["pending_migration"]
    assert plan["write_block_seconds"] == 60, "the plan carries the deployment's block limit"
    plan["requests_per_second"], plan["write_block_seconds"] = 2, 1
    emulator.reindex_docs_per_poll = 25
    live = LiveClient(emulator, {k: list(v) for k, v in LIVE_SCRIPT.items()})
    try:
        result = tool(emulator).run()
    finally:
        live.stop()
    assert result is not None and result.source == old_index
    assert not [r for r in live.refused if r[0] != -1], live.refused
    assert live.refused == [(-1, 403, "cluster_block_exception")] * 2
    assert len(reindex_calls(emulator)) == 3, "the copy, one unblocked round, the final round"
    live.retry_all()
    assert filled.update()[INDEX].status == "SUCCESS", "the deploy adopts the caught-up copy"
    assert_new_index_holds(filled, emulator, live.expected, 384)
    assert old_index not in emulator.indices and emulator.ingest_pipelines == {}


def test_killed_during_the_final_block_the_rerun_finishes_and_lifts_it(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    """Only the last round holds the block; a kill there leaves it (a write then is refused)."""
    old_index, _ = refuse(filled)
    emulator.reindex_docs_per_poll = 25
    live = LiveClient(emulator, {1: [("PUT", "late", "written during the copy")]})
    stall = live._poll

    def stall_in_the_final_round(request: Any, task_id: str) -> Any:
        if live.blocked():
            emulator.reindex_docs_per_poll = 0  # the endpoint stalls under the block
        return stall(request, task_id)

    emulator._tasks_get = stall_in_the_final_round  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            tool(emulator, kill_after=3).run()
    finally:
        live.stop()
    (target,) = [i for i in emulator.indices if i != old_index]
    assert emulator.indices[target].mappings["_meta"]["migration"]["phase"] == "final"
    status, body = signed_request(
        emulator, MASTER, "PUT", "/documents/_doc/blocked", {"passage_text": "refused"}
    )
    assert status == 403 and body["error"]["type"] == "cluster_block_exception"
    emulator.reindex_docs_per_poll = 25
    result = tool(emulator).run()
    assert result is not None and result.target == target and result.documents == len(TEXTS) + 1
    assert emulator.indices[target].docs["late"]["passage_text"] == "written during the copy"
    assert emulator.indices[old_index].settings.get("index.blocks.write") == "false"
    assert emulator.ingest_pipelines == {}
    status, _ = signed_request(
        emulator, MASTER, "PUT", "/documents/_doc/blocked", {"passage_text": "retried"}
    )
    assert status == 201 and "blocked" in emulator.indices[target].docs
