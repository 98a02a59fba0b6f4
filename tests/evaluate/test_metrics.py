"""Our metrics against pytrec_eval (trec_eval) on the same runs, and on hand-computed cases."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from tools.evaluate.metrics import drop_identical_ids, evaluate, per_query, query_metrics, ranked

KS = (1, 3, 5, 10)


def reference(qrels, run, k):
    """pytrec_eval's per-query values, renamed to ours."""
    measures = {f"ndcg_cut.{k}", f"map_cut.{k}", f"recall.{k}"}
    out = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    return {
        qid: {"NDCG": v[f"ndcg_cut_{k}"], "MAP": v[f"map_cut_{k}"], "Recall": v[f"recall_{k}"]}
        for qid, v in out.items()
    }


def random_case(seed: int):
    """Graded qrels, runs with ties, judged docs missing from runs, unjudged docs in runs."""
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(12):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 15))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(docs, rng.randint(0, 25))
        # Coarse scores make ties common, which exercises the tie-break.
        run[qid] = {d: float(rng.randint(0, 4)) for d in retrieved}
    return qrels, run


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", KS)
def test_per_query_values_agree_with_pytrec_eval(seed, k):
    qrels, run = random_case(seed)
    ours = per_query(qrels, run, k)
    theirs = reference(qrels, run, k)
    assert theirs, "pytrec_eval evaluated nothing: the case is degenerate"
    for qid, values in theirs.items():
        for metric, value in values.items():
            assert ours[qid][metric] == pytest.approx(value, abs=1e-6), (qid, metric, k)


def test_all_tied_scores_follow_trec_eval_order():
    qrels = {"q": {"a": 1, "b": 2, "c": 0}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.5}}
    assert ranked(run["q"]) == ["c", "b", "a", "d"]
    for k in (1, 2, 3):
        assert per_query(qrels, run, k)["q"] == pytest.approx(
            reference(qrels, run, k)["q"], abs=1e-6
        )


def test_hand_computed_values():
    # relevant: a (grade 2), b (grade 1); ranking: x, a, b
    judged = {"a": 2, "b": 1}
    scores = {"x": 3.0, "a": 2.0, "b": 1.0}
    got = query_metrics(judged, scores, 10)
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert got["NDCG"] == pytest.approx(dcg / idcg)
    assert got["MAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert got["Recall"] == 1.0
    # MAP@k and Recall@k divide by all relevant documents, not by min(k, R)
    assert query_metrics(judged, scores, 2) == pytest.approx(
        {"NDCG": (2 / math.log2(3)) / idcg, "MAP": (1 / 2) / 2, "Recall": 0.5}
    )


def test_mean_counts_queries_missing_from_the_run_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": {"a": 1.0}}
    assert evaluate(qrels, run, [10]) == {"NDCG@10": 0.5, "MAP@10": 0.5, "Recall@10": 0.5}
    # pytrec_eval only reports q1; over it alone the values agree.
    assert reference(qrels, run, 10)["q1"]["NDCG"] == 1.0


def test_mean_agrees_with_pytrec_eval_when_the_run_covers_every_query():
    qrels, run = random_case(99)
    for qid in qrels:
        run.setdefault(qid, {})
        run[qid].setdefault("unjudged-doc", -1.0)  # pytrec_eval drops queries with no results
    theirs = reference(qrels, run, 10)
    assert set(theirs) == set(qrels)
    ours = evaluate(qrels, run, [10])
    for metric in ("NDCG", "MAP", "Recall"):
        mean = sum(v[metric] for v in theirs.values()) / len(theirs)
        assert ours[f"{metric}@10"] == pytest.approx(mean, abs=1e-6)


def test_drop_identical_ids_removes_only_the_querys_own_id():
    run = {"q1": {"q1": 9.0, "d1": 1.0}, "q2": {"q1": 2.0}}
    assert drop_identical_ids(run) == {"q1": {"d1": 1.0}, "q2": {"q1": 2.0}}


def test_bad_k_and_empty_qrels_are_refused():
    with pytest.raises(ValueError, match="k must be >= 1"):
        query_metrics({"a": 1}, {"a": 1.0}, 0)
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate({}, {}, [10])
