"""tools.migrate for a chunking change: the plan carries the chunked mapping, the copy
re-embeds every chunk, the verification reads the chunked layout, the deploy adopts it."""

from __future__ import annotations

import json

from tests.ml_setup.conftest import (  # noqa: F401 - fixtures
    Stack,
    assumed,
    clock,
    emulator,
    provider,
    runtime,
    stack,
)
from tests.ml_setup.test_lifecycle import INDEX
from tests.ml_setup.test_migration import TEXTS, filled  # noqa: F401
from tests.support.opensearch_emulator import OpenSearchEmulator
from tests.tools.test_migrate import reindex_calls, tool

STEPS = [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 3}}]


def test_a_refused_chunking_change_is_migrated_and_adopted(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,  # noqa: F811
) -> None:
    old_index = filled.physical[INDEX]
    filled.props[INDEX].update(
        ReindexDocsPerSecond=1, MigrationBudgetSeconds=30, Chunking=json.dumps(STEPS)
    )
    refused = filled.update()[INDEX]
    assert refused.status == "FAILED" and "python -m tools.migrate" in refused.reason
    emulator.reindex_docs_per_poll = 25
    result = tool(emulator).run()
    assert result is not None and result.documents == len(TEXTS)
    target = result.target
    assert emulator.indices[target].mappings["properties"]["passage_text"]["chunking"] == STEPS
    for doc_id, doc in emulator.indices[target].docs.items():
        chunks = doc["passage_text_semantic_info"]["chunks"]
        assert "".join(c["text"] for c in chunks) == TEXTS[doc_id] and len(chunks) == 2
    assert emulator.aliases == {"documents": {target: {}}}
    results = filled.update()
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    assert results[INDEX].physical_id == target
    assert len(reindex_calls(emulator)) == 1 and old_index not in emulator.indices
