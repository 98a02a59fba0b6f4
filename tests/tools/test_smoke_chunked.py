"""The smoke test against a chunked semantic index that names the pipeline as its default.

The same checks as test_smoke.py must pass unchanged: a ``neural`` query on a
chunked field answers documents (scored by their best chunk, neural-search 3.7.0.0
NeuralQueryBuilder.java:786-787), so the test document is still the top hit by
its id, and the plain neural query is untouched by the default pipeline.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tools.conftest import CLIENT, CONCRETE_INDEX, DISTRACTORS, PIPELINE, Deployed
from tests.tools.test_smoke import documents, run, statuses

# Small chunks, so that every passage (the smoke test's own included) has several.
CHUNKING = [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 4}}]


@pytest.fixture
def index_chunking() -> list[dict[str, Any]]:
    return CHUNKING


@pytest.fixture
def default_pipeline() -> bool:
    return True


def test_the_index_really_is_chunked(deployed: Deployed) -> None:
    index = deployed.domain.indices[CONCRETE_INDEX]
    assert index.settings["index.search.default_pipeline"] == PIPELINE
    for doc in index.docs.values():
        info = doc["passage_text_semantic_info"]
        assert "embedding" not in info and len(info["chunks"]) >= 2


def test_every_check_passes_as_the_client_on_a_chunked_index(deployed: Deployed, capsys) -> None:
    seen: list[dict[str, Any]] = []
    put = deployed.domain._doc_put

    def recording(request, index, doc):  # type: ignore[no-untyped-def]
        outcome = put(request, index, doc)
        seen.append(deployed.domain.indices[index].docs[doc]["passage_text_semantic_info"])
        return outcome

    deployed.domain._doc_put = recording  # type: ignore[method-assign]
    code, lines = run(deployed, capsys, "--search-pipeline", PIPELINE, who=CLIENT)
    assert code == 0, lines
    assert set(statuses(lines).values()) == {"PASS"} and "hybrid search" in statuses(lines)
    (stored,) = seen
    assert len(stored["chunks"]) >= 2, "the smoke document was stored as chunks"
    assert documents(deployed) == set(DISTRACTORS)
