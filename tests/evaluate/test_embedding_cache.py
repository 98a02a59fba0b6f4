"""The per-text embedding cache: shards written as it goes, so a killed run resumes."""

from __future__ import annotations

import numpy as np
import pytest

from tools.evaluate.embedding_cache import EmbeddingCache, model_cache_name


def fake_vectors(texts):
    """A deterministic 'embedding': the text's length and first character code."""
    return np.array([[len(t), ord(t[0]) if t else 0] for t in texts], dtype=np.float32)


class Counting:
    """An embedder that records what it was asked and can die after some calls."""

    def __init__(self, die_after: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.die_after = die_after

    def __call__(self, texts):
        if self.die_after is not None and len(self.calls) >= self.die_after:
            raise KeyboardInterrupt("killed")
        self.calls.append(list(texts))
        return fake_vectors(texts)


TEXTS = [f"text {i}" for i in range(10)]


def test_a_killed_run_resumes_with_only_the_missing_texts(tmp_path):
    first = Counting(die_after=2)
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(tmp_path, "m", flush_every=3).embed(TEXTS, first)
    assert [len(c) for c in first.calls] == [3, 3]  # two shards were written before the kill
    second = Counting()
    cache = EmbeddingCache(tmp_path, "m", flush_every=3)
    assert len(cache) == 6
    vectors = cache.embed(TEXTS, second)
    assert second.calls == [TEXTS[6:9], TEXTS[9:]]
    np.testing.assert_array_equal(vectors, fake_vectors(TEXTS))
    third = Counting()
    EmbeddingCache(tmp_path, "m", flush_every=3).embed(TEXTS, third)
    assert third.calls == []  # everything cached: the embedder (and a model) is never touched


def test_duplicates_are_embedded_once_and_returned_in_order(tmp_path):
    embed = Counting()
    texts = ["b", "a", "b", "a", "c"]
    vectors = EmbeddingCache(tmp_path, "m").embed(texts, embed)
    assert embed.calls == [["b", "a", "c"]]
    np.testing.assert_array_equal(vectors, fake_vectors(texts))


def test_a_half_written_shard_is_ignored(tmp_path):
    EmbeddingCache(tmp_path, "m").embed(["x"], Counting())
    (tmp_path / "m" / ".tmp-123.npz").write_bytes(b"garbage from a crash")
    assert len(EmbeddingCache(tmp_path, "m")) == 1


def test_the_rate_survives_a_resume_and_imported_vectors_are_not_timed(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    assert cache.rate() is None
    cache.put(["a", "b"], fake_vectors(["a", "b"]), seconds=4.0)
    cache.put(["c"], fake_vectors(["c"]))  # no timing
    reopened = EmbeddingCache(tmp_path, "m")
    assert reopened.rate() == pytest.approx(0.5)
    assert reopened.shards == 2


def test_the_rate_of_a_text_set_ignores_shards_other_runs_added(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    cache.put(["a", "b"], fake_vectors(["a", "b"]), seconds=1.0)  # this set: 2/s
    cache.put(["chunk"], fake_vectors(["chunk"]), seconds=10.0)  # another run's text
    assert cache.rate(["a", "b"]) == pytest.approx(2.0)
    assert cache.rate() == pytest.approx(3 / 11)
    assert cache.rate(["zzz"]) is None


def test_get_names_a_missing_text(tmp_path):
    with pytest.raises(KeyError, match="not cached: 'absent'"):
        EmbeddingCache(tmp_path, "m").get(["absent"])


def test_everything_that_changes_a_vector_changes_the_cache_name(tmp_path):
    base = model_cache_name(tmp_path, "exact", "passage", "passage: ", None)
    assert base == model_cache_name(tmp_path / ".", "exact", "passage", "passage: ", None)
    others = {
        model_cache_name(tmp_path / "other", "exact", "passage", "passage: ", None),
        model_cache_name(tmp_path, "bf16", "passage", "passage: ", None),
        model_cache_name(tmp_path, "exact", "query", "passage: ", None),
        model_cache_name(tmp_path, "exact", "passage", "", None),
        model_cache_name(tmp_path, "exact", "passage", "passage: ", 256),
    }
    assert base not in others and len(others) == 5
