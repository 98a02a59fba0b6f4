"""catchup.py's pieces against the emulator: the id listing pages, deletions, stamping."""

from __future__ import annotations

from typing import Any

import pytest
from ml_setup import catchup

from tests.ml_setup.conftest import MASTER, Stack
from tests.ml_setup.test_lifecycle import INDEX
from tests.ml_setup.test_migration import TEXTS, filled  # noqa: F401 - fixture
from tests.support.opensearch_emulator import ApiError, OpenSearchEmulator, Request


def in_process(emulator: OpenSearchEmulator) -> catchup.Call:
    """catchup's transport straight into the emulator's front door, as the master user."""

    def call(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        try:
            outcome = emulator.handle(Request(MASTER.arn, method, path, query or {}, body))
        except ApiError as error:
            if error.status in allow:
                return error.status, error.body()
            raise
        return outcome.status, outcome.body

    return call


def test_the_id_listing_pages_with_search_after(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catchup, "ID_PAGE", 7)  # 60 documents: 9 pages, the last one short
    seen: list[Any] = []
    call = in_process(emulator)

    def recording(method: str, path: str, body: Any = None, *rest: Any, **kw: Any) -> Any:
        if path.endswith("/_search"):
            seen.append(body.get("search_after"))
        return call(method, path, body, *rest, **kw)

    assert catchup.ids(recording, filled.physical[INDEX]) == set(TEXTS)
    assert len(seen) == 9 and seen[0] is None and all(seen[1:]), "each page after the last id"


def test_deletions_remove_only_what_the_source_lost(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,
) -> None:
    call = in_process(emulator)
    source = filled.physical[INDEX]
    call("PUT", "/copy", {"settings": {"index": {"number_of_shards": 1}}})
    copy = emulator.indices["copy"]
    copy.docs.update({k: dict(v) for k, v in emulator.indices[source].docs.items()})
    copy.docs["gone"] = {"passage_text": "deleted from the source during the copy"}
    del emulator.indices[source].docs["4"]
    assert catchup.delete_removed(call, source, "copy") == 2
    assert set(copy.docs) == set(TEXTS) - {"4"}


def test_stamping_marks_only_writes_made_after_it_and_finish_stops_it(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,
) -> None:
    call = in_process(emulator)
    source = filled.physical[INDEX]
    catchup.stamp(call, source, "documents-migration-stamp", 3)
    call("PUT", f"/{source}/_doc/new", {"passage_text": "after the stamp"})
    assert catchup.count(call, source, catchup.since(3)) == 1
    assert catchup.count(call, source, catchup.since(4)) == 0
    doc = emulator.indices[source].docs["new"]
    assert doc["migration_generation"] == 3 and doc["passage_text_semantic_info"]["embedding"]
    catchup.finish(call, source, "documents-migration-stamp")
    call("PUT", f"/{source}/_doc/later", {"passage_text": "after finish"})
    assert "migration_generation" not in emulator.indices[source].docs["later"]
    assert emulator.ingest_pipelines == {}


def test_a_default_pipeline_of_someone_elses_is_neither_replaced_nor_reset(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,
) -> None:
    call = in_process(emulator)
    source = filled.physical[INDEX]
    call("PUT", "/_ingest/pipeline/theirs", {"processors": [{"set": {"field": "a", "value": 1}}]})
    call("PUT", f"/{source}/_settings", {"index": {"default_pipeline": "theirs"}})
    with pytest.raises(catchup.CatchUpError, match=r"has its own index.default_pipeline theirs"):
        catchup.stamp(call, source, "documents-migration-stamp", 1)
    catchup.finish(call, source, "documents-migration-stamp")  # an abandon's cleanup
    assert emulator.indices[source].settings["index.default_pipeline"] == "theirs"
    assert set(emulator.ingest_pipelines) == {"theirs"}
