"""NDCG@k, MAP@k and Recall@k with trec_eval's conventions (checked against pytrec_eval in tests).

Our own code rather than a dependency on pytrec_eval at run time because the
conventions are the whole point and they are few; writing them down here makes
them visible:

* Ranking: by score descending; ties are broken by document id *descending*
  (trec_eval's order), so equal scores never make a result depend on dict order.
* Relevance: a judged grade > 0 is relevant (trec_eval's default relevance
  level 1); NDCG uses the grade itself as the gain (trec_eval's linear gain,
  not ``2**grade - 1``), with the ideal ranking built from all judged grades.
* MAP@k divides by *all* relevant documents of the query, not by ``min(k, R)``
  (trec_eval's ``map_cut``); Recall@k likewise.
* Averages run over every query in the qrels. A query the system returned
  nothing for counts as 0 (trec_eval ``-c``), which is stricter than averaging
  only the queries a run happened to answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

METRICS = ("NDCG", "MAP", "Recall")


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first, ties by id descending (trec_eval's order).

    Two stable sorts: by id descending, then by score descending, which keeps
    the id order inside each group of equal scores.
    """
    by_id = sorted(scores, reverse=True)
    return sorted(by_id, key=lambda doc: -scores[doc])


def query_metrics(
    judged: Mapping[str, int], scores: Mapping[str, float], k: int
) -> dict[str, float]:
    """NDCG@k, MAP@k and Recall@k of one query."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = ranked(scores)[:k]
    num_rel = sum(1 for grade in judged.values() if grade > 0)
    if num_rel == 0:
        return {"NDCG": 0.0, "MAP": 0.0, "Recall": 0.0}
    dcg = 0.0
    hits = 0
    precision_sum = 0.0
    for rank, doc in enumerate(top, start=1):
        grade = judged.get(doc, 0)
        if grade > 0:
            dcg += grade / math.log2(rank + 1)
            hits += 1
            precision_sum += hits / rank
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return {
        "NDCG": dcg / idcg,
        "MAP": precision_sum / num_rel,
        "Recall": hits / num_rel,
    }


def per_query(qrels: Qrels, run: Run, k: int) -> dict[str, dict[str, float]]:
    """Metrics for every query of the qrels (missing from the run: empty ranking)."""
    return {qid: query_metrics(judged, run.get(qid, {}), k) for qid, judged in qrels.items()}


def evaluate(qrels: Qrels, run: Run, ks: Iterable[int] = (10,)) -> dict[str, float]:
    """Mean metrics keyed ``"NDCG@10"`` etc., for each k."""
    if not qrels:
        raise ValueError("qrels are empty: nothing to evaluate")
    out: dict[str, float] = {}
    for k in ks:
        rows = per_query(qrels, run, k)
        for metric in METRICS:
            out[f"{metric}@{k}"] = sum(r[metric] for r in rows.values()) / len(rows)
    return out


def drop_identical_ids(run: Run) -> dict[str, dict[str, float]]:
    """Remove a query's own id from its results.

    BEIR's evaluation does this by default (``ignore_identical_ids``): in
    ArguAna every query is itself a corpus document, and retrieving it is not
    an answer. Reproducing BEIR numbers needs the same rule.
    """
    return {qid: {d: s for d, s in docs.items() if d != qid} for qid, docs in run.items()}
