"""OpenSearch's normalisation + combination and max-over-chunks, on hand-computed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.evaluate.hybrid import combine, knn_cosine_score, max_over_chunks, normalize


def test_min_max_maps_the_lowest_hit_to_0_001_not_0():
    assert normalize({"a": 3.0, "b": 2.0, "c": 1.0}, "min_max") == {
        "a": 1.0,
        "b": 0.5,
        "c": 0.001,
    }
    assert normalize({"a": 7.0}, "min_max") == {"a": 1.0}  # single score
    assert normalize({}, "min_max") == {}


def test_l2_divides_by_the_norm_of_the_sub_querys_hits():
    out = normalize({"a": 3.0, "b": 4.0}, "l2")
    assert out == {"a": pytest.approx(0.6), "b": pytest.approx(0.8)}
    assert normalize({"a": 0.0}, "l2") == {"a": 0.0}


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match="normalization: 'z_score', choose from min_max, l2"):
        normalize({"a": 1.0}, "z_score")


def test_a_document_missing_from_a_sub_query_still_counts_that_weight():
    bm25 = {"q": {"a": 10.0, "b": 5.0}}
    knn = {"q": {"b": 0.9, "c": 0.8, "d": 0.7}}
    out = combine([bm25, knn], (0.3, 0.7), "min_max", depth=10)["q"]
    # bm25 normalised: a 1.0, b 0.001; knn: b 1.0, c 0.5, d 0.001
    assert out["a"] == pytest.approx(0.3 * 1.0)
    assert out["b"] == pytest.approx(0.3 * 0.001 + 0.7 * 1.0)
    assert out["c"] == pytest.approx(0.7 * 0.5)
    assert out["d"] == pytest.approx(0.7 * 0.001)
    assert list(combine([bm25, knn], (0.3, 0.7), "min_max", depth=2)["q"]) == ["b", "c"]


def test_l2_combination_differs_from_min_max_and_uses_knn_scores():
    bm25 = {"q": {"a": 3.0, "b": 4.0}}
    knn = {"q": {"a": float(knn_cosine_score(0.8)), "b": float(knn_cosine_score(0.6))}}
    out = combine([bm25, knn], (0.5, 0.5), "l2", depth=10)["q"]
    norm = math.hypot(0.9, 0.8)
    assert out["a"] == pytest.approx(0.5 * 0.6 + 0.5 * 0.9 / norm)
    assert out["b"] == pytest.approx(0.5 * 0.8 + 0.5 * 0.8 / norm)


def test_knn_cosinesimil_score_is_one_plus_cosine_over_two():
    np.testing.assert_allclose(knn_cosine_score(np.array([1.0, 0.0, -1.0])), [1.0, 0.5, 0.0])


def test_a_document_scores_its_best_chunk():
    scores = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.4, 0.6, 0.7]])
    owners = np.array([0, 0, 2, 2])  # document 1 has no chunk
    out = max_over_chunks(scores, owners, 3)
    np.testing.assert_array_equal(out, [[0.9, -np.inf, 0.3], [0.5, -np.inf, 0.7]])
