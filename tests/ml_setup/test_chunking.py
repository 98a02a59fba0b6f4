"""Chunking of the semantic field: the server's rules (emulated), the resource, the migration.

* The emulator's chunking rules are neural-search 3.7.0.0's (its semantic chunking
  section cites them): what the mapping accepts and refuses, the nested ``chunks``
  layout, the chunkers' output, and a ``neural`` query that answers documents scored
  by their best chunk.
* ``Custom::SemanticIndex`` passes ``Chunking`` (a JSON list, or a boolean) into the
  mapping; it is part of the index name, so a change replaces the index through the
  re-embedding copy, and no chunking keeps the name an unchunked stack already has.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ml_setup.conftest import CLIENT, MASTER, Stack
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_lifecycle import INDEX, MODEL, created
from tests.ml_setup.test_migration import TEXTS, assert_all_reembedded, filled  # noqa: F401
from tests.support.opensearch_emulator import (
    ApiError,
    Chunker,
    OpenSearchEmulator,
    chunk_text,
    parse_chunking,
)

STEPS = [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 3}}]


# -- the chunkers, against outputs worked out by hand from the Java code


def test_fixed_token_length_keeps_the_gaps_and_overlaps_by_floor_of_the_rate() -> None:
    # FixedTokenLengthChunker.chunk: the first chunk starts at 0, each ends where
    # token i + limit starts, the last runs to the end; overlap floor(4 * 0.5) = 2.
    (chunker,) = parse_chunking([
        {"algorithm": "fixed_token_length",
         "parameters": {"token_limit": 4, "overlap_rate": 0.5}}])  # fmt: skip
    text = "  one two, three four five six seven"
    assert chunker.chunk(text, {"max_chunk_limit": 100, "chunk_string_count": 1}) == [
        "  one two, three four ",
        "three four five six ",
        "five six seven",
    ]


def test_delimiter_keeps_the_delimiter_and_the_rest() -> None:
    chunks = chunk_text("a.b..c.", parse_chunking([
        {"algorithm": "delimiter", "parameters": {"delimiter": "."}}]))  # fmt: skip
    assert chunks == ["a.", "b.", ".", "c."]
    assert chunk_text("p1\n\np2", parse_chunking([{"algorithm": "delimiter"}])) == ["p1\n\n", "p2"]


def test_fixed_char_length_and_the_max_chunk_limit_keeps_the_tail_in_the_last_chunk() -> None:
    parameters = {"char_limit": 4, "overlap_rate": 0.25, "max_chunk_limit": 2}
    chunks = chunk_text(
        "abcdefghij", parse_chunking([{"algorithm": "fixed_char_length", "parameters": parameters}])
    )
    # interval 4 - floor(1) = 3; the second chunk hits the limit and takes the rest.
    assert chunks == ["abcd", "defghij"]


def test_chained_chunkers_split_each_chunk_again() -> None:
    steps = [{"algorithm": "delimiter", "parameters": {"delimiter": "|"}},
             {"algorithm": "fixed_char_length", "parameters": {"char_limit": 2}}]  # fmt: skip
    assert chunk_text("abc|de", parse_chunking(steps)) == ["ab", "c|", "de"]


def test_true_and_an_empty_list_mean_the_default_chunker() -> None:
    assert parse_chunking(True) == parse_chunking([]) == [Chunker("fixed_token_length")]
    assert parse_chunking(False) is None and parse_chunking(None) is None


@pytest.mark.parametrize(
    ("chunking", "reason"),
    [
        ("yes", "[chunking] must be either a List of Maps or a Boolean"),
        ([{"algorithm": "fixed_token_length"}, 3], "must be either a List of Maps"),
        ([{"parameters": {}}], "[algorithm] is required to configure the chunking strategy."),
        ([{"algorithm": "sentence"}], "[algorithm] must be ["),
        ([{"algorithm": "delimiter", "tag": "x"}], "[chunking] does not support parameters [tag]"),
        ([{"algorithm": "delimiter", "parameters": "x"}],
         "parameters in chunking should be a Map."),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limit": 0}}],
         "Parameter [token_limit] must be positive."),
        ([{"algorithm": "fixed_token_length", "parameters": {"token_limit": 2.5}}],
         "Parameter [token_limit] must be of java.lang.Integer type"),
        ([{"algorithm": "fixed_token_length", "parameters": {"overlap_rate": 0.6}}],
         "Parameter [overlap_rate] must be between 0.0 and 0.5"),
        ([{"algorithm": "fixed_token_length", "parameters": {"tokenizer": "keyword"}}],
         "Tokenizer [keyword] is not supported for [fixed_token_length] algorithm."),
        ([{"algorithm": "fixed_char_length", "parameters": {"char_limit": -1}}],
         "Parameter [char_limit] must be positive."),
        ([{"algorithm": "delimiter", "parameters": {"delimiter": ""}}],
         "Parameter [delimiter] should not be empty."),
        ([{"algorithm": "delimiter", "parameters": {"max_chunk_limit": 0}}],
         "Parameter [max_chunk_limit] must be positive or -1 to disable this parameter"),
    ],
)  # fmt: skip
def test_the_mapping_refuses_what_neural_search_refuses(chunking: Any, reason: str) -> None:
    # Called directly: the API specification's strict request check would refuse the
    # shapes it does not declare (a string, an unknown key) before the rule is reached.
    with pytest.raises(ApiError) as refused:
        parse_chunking(chunking)
    assert refused.value.status == 400
    assert refused.value.error_type == "mapper_parsing_exception"
    assert reason in refused.value.reason


def test_an_index_with_refused_chunking_parameters_is_not_created(
    emulator: OpenSearchEmulator, stack: Stack
) -> None:
    created(stack)
    chunking = [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 0}}]
    status, body = signed_request(emulator, MASTER, "PUT", "/other-index", {
        "settings": {"index": {"knn": True}},
        "mappings": {"properties": {"text": {
            "type": "semantic", "model_id": stack.physical[MODEL], "chunking": chunking}}},
    })  # fmt: skip
    assert status == 400, body
    assert body["error"]["type"] == "mapper_parsing_exception"
    assert body["error"]["reason"] == "Parameter [token_limit] must be positive."
    assert "other-index" not in emulator.indices


def test_the_mapping_accepts_string_numbers_as_the_server_parses_them() -> None:
    # ChunkerParameterParser reads values through toString(): "384" is an integer.
    (chunker,) = parse_chunking([
        {"algorithm": "fixed_token_length",
         "parameters": {"token_limit": "7", "overlap_rate": "0.2"}}])  # fmt: skip
    assert (chunker.token_limit, chunker.overlap_rate) == (7, 0.2)
    with pytest.raises(ApiError):
        parse_chunking([{"algorithm": "fixed_token_length", "parameters": {"token_limit": True}}])


# -- the resource


def chunked(stack: Stack, steps: Any = STEPS) -> None:
    stack.props[INDEX]["Chunking"] = json.dumps(steps) if not isinstance(steps, bool) else steps


def test_a_chunked_index_stores_chunks_and_a_neural_query_answers_documents(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    chunked(stack)
    created(stack)
    name = stack.physical[INDEX]
    mapping = emulator.indices[name].mappings["properties"]
    assert mapping["passage_text"]["chunking"] == STEPS
    info = mapping["passage_text_semantic_info"]["properties"]
    assert info["chunks"]["type"] == "nested"
    assert set(info["chunks"]["properties"]) == {"text", "embedding"}
    assert info["chunks"]["properties"]["embedding"]["dimension"] == 384
    assert "embedding" not in info
    texts = {"a": "alpha beta gamma delta epsilon", "b": "zeta eta theta", "c": "iota kappa"}
    for doc_id, text in texts.items():
        status, _ = signed_request(
            emulator, CLIENT, "PUT", f"/documents/_doc/{doc_id}", {"passage_text": text}
        )
        assert status == 201
    stored = emulator.indices[name].docs["a"]["passage_text_semantic_info"]
    assert [c["text"] for c in stored["chunks"]] == ["alpha beta gamma ", "delta epsilon"]
    model = emulator.models[stack.physical[MODEL]]
    for chunk in stored["chunks"]:
        assert chunk["embedding"] == emulator.embedder([chunk["text"]], "passage", model)[0]
    # The second chunk of "a" is the query's own text: "a" wins, once, scored by that chunk.
    neural = {"neural": {"passage_text": {"query_text": "delta epsilon"}}}
    status, body = signed_request(
        emulator, CLIENT, "POST", "/documents/_search", {"size": 10, "query": neural}
    )
    assert status == 200, body
    ids = [h["_id"] for h in body["hits"]["hits"]]
    assert ids[0] == "a" and sorted(ids) == ["a", "b", "c"]
    (query,) = emulator.embedder(["delta epsilon"], "query", model)
    best = max(
        sum(x * y for x, y in zip(query, c["embedding"], strict=True)) for c in stored["chunks"]
    )
    assert body["hits"]["hits"][0]["_score"] == pytest.approx((1 + best) / 2)


def test_no_chunking_keeps_the_name_of_an_unchunked_index(stack: Stack) -> None:
    """A stack from before the key sends no Chunking; false and absent must name alike."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))
    from ml_setup.properties import Props
    from ml_setup.semantic_index import RESOURCE_TYPE, Spec

    def name(**extra: Any) -> str:
        props = {**stack.props[INDEX], "ModelId": "m1", **extra}
        return Spec.parse(Props(props, RESOURCE_TYPE)).index_name

    assert name() == name(Chunking="false") == name(Chunking=False)
    names = {name(), name(Chunking="true"), name(Chunking=json.dumps(STEPS)),
             name(Chunking=json.dumps([{"algorithm": "delimiter"}]))}  # fmt: skip
    assert len(names) == 4, "each chunking setting is its own index"


@pytest.mark.parametrize(
    "value", ["[1]", '[{"algorithm": 3}]', "[", '[{"algorithm": "delimiter", "x": 1}]', "maybe"]
)
def test_a_malformed_chunking_property_fails_with_one_line(stack: Stack, value: str) -> None:
    stack.props[INDEX]["Chunking"] = value
    results = stack.create()
    result = results[INDEX]
    assert result.status == "FAILED"
    assert "Chunking" in result.reason and "\n" not in result.reason
    assert len(result.reason) <= 400


def test_turning_chunking_on_replaces_the_index_and_reembeds_every_chunk(
    filled: Stack,  # noqa: F811
    emulator: OpenSearchEmulator,
) -> None:
    old = filled.physical[INDEX]
    chunked(filled)
    results = filled.update()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    assert results[INDEX].polls >= 2, "re-embedded through the copy task"
    new = filled.physical[INDEX]
    assert new != old and old not in emulator.indices
    assert emulator.aliases == {"documents": {new: {}}}
    model = emulator.models[filled.physical[MODEL]]
    docs = emulator.indices[new].docs
    assert set(docs) == set(TEXTS)
    for doc_id, doc in docs.items():
        info = doc["passage_text_semantic_info"]
        texts = [c["text"] for c in info["chunks"]]
        assert "".join(texts) == TEXTS[doc_id], "the chunks cover the text, in order"
        assert len(texts) == 2  # "document number N | about topic M"
        vectors = emulator.embedder(texts, "passage", model)
        assert [c["embedding"] for c in info["chunks"]] == vectors
    # The other way: back to no chunking is another replacement, one vector a document.
    del filled.props[INDEX]["Chunking"]
    results = filled.update()
    assert all(r.status == "SUCCESS" for r in results.values()), results
    # The unchunked name again (the name is a hash of the fixed settings), re-created
    # and filled by a copy from the chunked index, which the cleanup deleted.
    assert filled.physical[INDEX] == old and new not in emulator.indices
    assert_all_reembedded(filled, emulator, 384)


def test_a_chunking_change_is_refused_in_place_by_the_server(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """Why it must replace: SemanticFieldMapper's chunking parameter is not updatable."""
    created(stack)
    name = stack.physical[INDEX]
    status, body = signed_request(emulator, MASTER, "PUT", f"/{name}/_mapping", {
        "properties": {"passage_text": {
            "type": "semantic", "model_id": stack.physical[MODEL], "chunking": True}}})  # fmt: skip
    assert status == 400
    assert "Cannot update parameter [chunking]" in body["error"]["reason"]
