"""Hybrid scoring as OpenSearch's normalization processor does it, and max-over-chunks scoring.

Used by ``tools.evaluate local`` to compare hybrid weightings and
normalisations offline. Sources, ``opensearch-project/neural-search`` at tag
``3.7.0.0``, under ``src/main/java/org/opensearch/neuralsearch/processor/``:

* ``min_max`` (``normalization/MinMaxScoreNormalizationTechnique.java``):
  per sub-query, ``(score - min) / (max - min)`` over that sub-query's hits;
  a normalised 0 becomes ``MIN_SCORE`` 0.001 (lines 50, 290-297); a
  sub-query whose single score is both min and max gives 1.0 (lines 52,
  267-269, 285-287). No lower/upper bounds (the default).
* ``l2`` (``normalization/L2ScoreNormalizationTechnique.java``):
  ``score / sqrt(sum of the sub-query's squared scores)``, 0 when the norm is
  0 (lines 36, 115-145).
* ``arithmetic_mean`` (``combination/ArithmeticMeanScoreCombinationTechnique.java:36-53``):
  ``sum(w_i * s_i) / sum(w_i)`` over the sub-queries whose score is >= 0. A
  document missing from a sub-query's hits has score 0.0 there (the array is
  ``new float[]``, ``combination/ScoreCombiner.java:361-375``; the comment
  there says -1, the code does not), so it counts with weight and score 0.

The semantic sub-query's scores must be OpenSearch's, not raw cosines, because
``l2`` is not invariant to an affine change of scores: a ``knn`` score for
``cosinesimil`` is ``(1 + cos) / 2`` (k-NN 3.7.0.0
``src/main/java/org/opensearch/knn/index/SpaceType.java:70-86``, raw score
``1 - cos``), see :func:`knn_cosine_score`.

A ``neural`` query over a chunked semantic field is a ``nested`` query over
the chunks with ``ScoreMode.Max`` (``query/NeuralQueryBuilder.java:785-787``
in neural-search): a document scores its best chunk, :func:`max_over_chunks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tools.evaluate.metrics import Run

NORMALIZATIONS = ("min_max", "l2")
MIN_MAX_MIN_SCORE = 0.001
SINGLE_RESULT_SCORE = 1.0


def knn_cosine_score(cosine: np.ndarray | float) -> np.ndarray | float:
    """k-NN's ``cosinesimil`` score of a cosine similarity: ``max((2 - (1 - cos)) / 2, 0)``."""
    return np.maximum((1.0 + np.asarray(cosine)) / 2.0, 0.0)


def normalize(scores: dict[str, float], technique: str) -> dict[str, float]:
    """One sub-query's hits, normalised by ``technique`` (``min_max`` or ``l2``)."""
    if not scores:
        return {}
    if technique == "min_max":
        low, high = min(scores.values()), max(scores.values())
        out = {}
        for doc, score in scores.items():
            if high == low:
                out[doc] = SINGLE_RESULT_SCORE
                continue
            value = (score - low) / (high - low)
            out[doc] = MIN_MAX_MIN_SCORE if value == 0.0 else value
        return out
    if technique == "l2":
        norm = math.sqrt(sum(s * s for s in scores.values()))
        return {doc: (0.0 if norm == 0 else s / norm) for doc, s in scores.items()}
    raise ValueError(f"normalization: {technique!r}, choose from {', '.join(NORMALIZATIONS)}")


def combine(
    runs: Sequence[Run], weights: Sequence[float], technique: str, depth: int
) -> dict[str, dict[str, float]]:
    """Normalise each sub-query's run, then the weighted arithmetic mean, best ``depth`` kept."""
    if len(runs) != len(weights):
        raise ValueError(f"{len(runs)} sub-queries but {len(weights)} weights")
    combined: dict[str, dict[str, float]] = {}
    total = float(sum(weights))
    query_ids = set().union(*(r.keys() for r in runs))
    for qid in query_ids:
        acc: dict[str, float] = {}
        for run, weight in zip(runs, weights, strict=True):
            for doc, score in normalize(run.get(qid, {}), technique).items():
                acc[doc] = acc.get(doc, 0.0) + weight * score
        # A document absent from a sub-query scores 0 there, which still counts
        # its weight (score >= 0), so every document is divided by the total.
        best = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
        combined[qid] = {doc: score / total for doc, score in best}
    return combined


def max_over_chunks(chunk_scores: np.ndarray, owners: np.ndarray, n_docs: int) -> np.ndarray:
    """Each document's best chunk score (``-inf`` for a document with no chunk).

    ``chunk_scores`` is (queries, chunks); ``owners[j]`` is chunk j's document.
    """
    out = np.full((chunk_scores.shape[0], n_docs), -np.inf, dtype=np.float64)
    np.maximum.at(out.T, owners, chunk_scores.T)
    return out
