"""`tools.evaluate local`: chunked and hybrid variants and the embedding cache, on the fixture."""

from __future__ import annotations

import numpy as np
import pytest

from tools.evaluate import local
from tools.evaluate.__main__ import main
from tools.evaluate.chunking import chunk_corpus, parse_chunking
from tools.evaluate.hybrid import combine, knn_cosine_score
from tools.evaluate.local import bm25_run, cached_embedder, embed_texts, in_process, run_local
from tools.evaluate.metrics import ranked


def small_chunks():
    return parse_chunking(
        [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 6, "overlap_rate": 0.5}}]
    )


def test_a_chunking_that_keeps_whole_passages_ranks_like_asymmetric(dataset, embedding_model):
    embed = in_process(embedding_model)[0]
    whole = parse_chunking(
        [{"algorithm": "fixed_token_length", "parameters": {"token_limit": 10_000}}]
    )
    runs = run_local(dataset, embed, depth=5, systems=("asymmetric",), chunkings=[whole])
    for qid, hits in runs["asymmetric"].items():
        assert ranked(runs["asymmetric[ftl10000]"][qid]) == ranked(hits)
        for doc, cosine in hits.items():
            assert runs["asymmetric[ftl10000]"][qid][doc] == pytest.approx(
                float(knn_cosine_score(cosine)), abs=1e-6
            )


def test_a_chunked_document_scores_its_best_chunk(dataset, embedding_model):
    embed = in_process(embedding_model)[0]
    config = small_chunks()
    runs = run_local(dataset, embed, depth=30, systems=("bm25",), chunkings=[config])
    doc_ids = list(dataset.corpus)
    chunks, owners = chunk_corpus([dataset.corpus[d].indexed_text for d in doc_ids], config)
    assert len(chunks) > len(doc_ids)  # the fixture's passages do get split
    chunk_vectors = embed_texts(embedding_model, chunks, "passage")
    query = embed_texts(embedding_model, [dataset.queries["q3"]], "query")[0]
    cosines = chunk_vectors @ query
    for doc, score in runs[f"asymmetric[{config.label()}]"]["q3"].items():
        best = max(c for c, o in zip(cosines, owners, strict=True) if doc_ids[o] == doc)
        assert score == pytest.approx(float(knn_cosine_score(best)), abs=1e-6)


def test_hybrid_variants_combine_bm25_with_knn_scores(dataset, embedding_model):
    embed = in_process(embedding_model)[0]
    runs = run_local(
        dataset,
        embed,
        depth=11,
        systems=("asymmetric", "bm25"),
        hybrid_weights=[0.5, 0.8],
        hybrid_normalizations=["min_max", "l2"],
    )
    assert {"hybrid[min_max,0.5]", "hybrid[l2,0.8]"} <= set(runs)
    semantic = {
        q: {d: float(knn_cosine_score(s)) for d, s in hits.items()}
        for q, hits in runs["asymmetric"].items()
    }
    expected = combine([bm25_run(dataset, 11), semantic], (0.2, 0.8), "l2", 11)
    for qid, hits in expected.items():
        assert runs["hybrid[l2,0.8]"][qid] == pytest.approx(hits, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hybrid_weights": [1.0], "hybrid_normalizations": ["l2"]}, "must be in (0, 1)"),
        ({"hybrid_weights": [0.5], "hybrid_normalizations": ["z"]}, "hybrid normalization 'z'"),
        ({"hybrid_weights": [0.5]}, "need both weights and normalizations"),
    ],
)
def test_bad_hybrid_settings_are_refused(dataset, embedding_model, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_local(dataset, in_process(embedding_model)[0], depth=5, systems=("bm25",), **kwargs)


def test_cached_embedder_embeds_each_distinct_text_once_across_runs(
    embedding_model, tmp_path, monkeypatch
):
    calls: list[int] = []
    real = local.embed_texts

    def counting(model, texts, content_type):
        calls.append(len(texts))
        return real(model, texts, content_type)

    monkeypatch.setattr(local, "embed_texts", counting)
    texts = ["alpha beta", "gamma", "alpha beta"]
    first = cached_embedder(embedding_model, "m", tmp_path, progress=False)(texts, "passage")
    assert calls == [2]
    again = cached_embedder(embedding_model, "m", tmp_path, progress=False)(texts, "passage")
    assert calls == [2]  # a fresh embedder over the same directory embeds nothing
    cached_embedder(embedding_model, "m", tmp_path, progress=False)(texts, "query")
    assert calls == [2, 2]  # another content type is another cache
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, real(embedding_model, texts, "passage"), atol=1e-6)


def test_cli_variants_table_and_cache(fixture_dir, tmp_path, capsys):
    argv = ["local", "--dataset", str(fixture_dir), "--model-dir", "bundled-minilm"]
    argv += ["--out", str(tmp_path / "out"), "--embedding-cache", str(tmp_path / "cache")]
    argv += ["--systems", "asymmetric,bm25", "--chunking", "true"]
    argv += ["--hybrid-weights", "0.7", "--hybrid-normalizations", "l2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| minibeir | asymmetric[ftl384] |" in out
    assert "| minibeir | hybrid[ftl384,l2,0.7] |" in out
    assert any((tmp_path / "cache").glob("*-passage-*/shard-*.npz"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunking", "{oops"], "--chunking: not JSON"),
        (["--chunking", '"yes"'], "--chunking: chunking: must be either a list"),
        (["--hybrid-weights", "a,b"], "--hybrid-weights: 'a,b' is not a list of numbers"),
    ],
)
def test_cli_bad_variant_options_are_one_line(fixture_dir, tmp_path, capsys, extra, message):
    argv = ["local", "--dataset", str(fixture_dir), "--model-dir", "bundled-minilm", *extra]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
