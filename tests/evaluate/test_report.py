"""Report tables (Markdown, JSON) in the blog's shape, and the chart file."""

from __future__ import annotations

import json

import pytest

from tools.evaluate.datasets import LengthStats
from tools.evaluate.report import (
    DatasetResult,
    change_pct,
    comparison_rows,
    markdown,
    metric_names,
    write_all,
)

STATS = LengthStats(3.29, 2.0, 232.1, 224.0, 3633, 323)


def result() -> DatasetResult:
    return DatasetResult(
        dataset="nfcorpus",
        stats=STATS,
        metrics={
            "symmetric": {"NDCG@10": 0.278, "MAP@10": 0.086, "Recall@10": 0.120},
            "asymmetric": {"NDCG@10": 0.322, "MAP@10": 0.106, "Recall@10": 0.139},
            "bm25": {"NDCG@10": 0.3, "MAP@10": 0.1, "Recall@10": 0.13},
        },
    )


def test_change_is_relative_to_symmetric_and_undefined_at_zero():
    assert change_pct(0.278, 0.322) == pytest.approx(15.827, abs=1e-3)
    assert change_pct(0.224, 0.220) == pytest.approx(-1.786, abs=1e-3)
    assert change_pct(0.0, 0.5) is None


def test_metrics_are_ordered_like_the_blog():
    r = result()
    r.metrics["symmetric"]["NDCG@3"] = r.metrics["asymmetric"]["NDCG@3"] = 0.1
    assert metric_names([r]) == ["NDCG@3", "NDCG@10", "MAP@10", "Recall@10"]


def test_markdown_has_the_blogs_two_tables_and_all_systems():
    text = markdown([result()])
    assert "| nfcorpus | 3.29 | 2 | 232.10 | 224 | 3,633 | 323 |" in text
    assert "| Dataset | Metric | Symmetric | Asymmetric | Asymmetric vs symmetric |" in text
    assert "| nfcorpus | NDCG@10 | 0.278 | 0.322 | +15.8% |" in text
    assert "| nfcorpus | MAP@10 | 0.086 | 0.106 | +23.3% |" in text
    assert "| nfcorpus | Recall@10 | 0.120 | 0.139 | +15.8% |" in text
    assert "| nfcorpus | NDCG@10 | 0.278 | 0.322 | 0.300 | - |" not in text  # no hybrid column
    assert "| Dataset | Metric | symmetric | asymmetric | bm25 |" in text
    assert "| nfcorpus | NDCG@10 | 0.278 | 0.322 | 0.300 |" in text


def test_without_both_dense_systems_there_is_no_comparison_row():
    r = result()
    del r.metrics["symmetric"]
    assert comparison_rows([r]) == []
    assert "Asymmetric vs symmetric" not in markdown([r])


def test_files_are_written(tmp_path):
    paths = write_all([result()], tmp_path / "out", {"target": "local"})
    data = json.loads(paths["json"].read_text())
    assert data["meta"] == {"target": "local"}
    assert data["datasets"][0]["stats"]["passages"] == 3633
    assert [row["metric"] for row in data["comparison"]] == ["NDCG@10", "MAP@10", "Recall@10"]
    assert data["comparison"][0]["change_pct"] == pytest.approx(15.827, abs=1e-3)
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["markdown"].read_text() == markdown([result()])
