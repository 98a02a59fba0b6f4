"""Results in the blog's shapes: Markdown and JSON tables, a bar chart, length statistics.

Two tables follow the blog post: its first (query and passage lengths in
words, passages, test queries), and its comparison (dataset, metric,
symmetric, asymmetric, change %). A third lists every system that ran (BM25
and hybrid too), because the blog's own conclusion on ArguAna is that "sparse
search may even outperform both" and a reader needs to see that number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.evaluate.datasets import LengthStats

SYSTEM_ORDER = ("symmetric", "asymmetric", "bm25", "hybrid")


@dataclass
class DatasetResult:
    """One dataset's statistics and each system's mean metrics (keys like ``NDCG@10``)."""

    dataset: str
    stats: LengthStats
    metrics: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)


def change_pct(symmetric: float, asymmetric: float) -> float | None:
    """Relative change of asymmetric over symmetric in percent; undefined when symmetric is 0."""
    if symmetric == 0:
        return None
    return (asymmetric - symmetric) / symmetric * 100.0


def metric_names(results: Sequence[DatasetResult]) -> list[str]:
    """Metric keys in a stable order: by k, then NDCG, MAP, Recall (the blog's order)."""
    keys: set[str] = set()
    for result in results:
        for values in result.metrics.values():
            keys.update(values)
    order = {"NDCG": 0, "MAP": 1, "Recall": 2}
    return sorted(keys, key=lambda k: (int(k.split("@")[1]), order.get(k.split("@")[0], 9), k))


def comparison_rows(results: Sequence[DatasetResult]) -> list[dict[str, Any]]:
    """The blog's comparison rows, for datasets where both dense systems ran."""
    rows: list[dict[str, Any]] = []
    for result in results:
        sym = result.metrics.get("symmetric")
        asym = result.metrics.get("asymmetric")
        if sym is None or asym is None:
            continue
        for metric in metric_names([result]):
            rows.append(
                {
                    "dataset": result.dataset,
                    "metric": metric,
                    "symmetric": sym[metric],
                    "asymmetric": asym[metric],
                    "change_pct": change_pct(sym[metric], asym[metric]),
                }
            )
    return rows


def _fmt_change(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def markdown(results: Sequence[DatasetResult], title: str = "Relevance evaluation") -> str:
    """All three tables as one Markdown document."""
    lines = [f"## {title}", ""]
    lines += [
        "| Dataset | Avg query length | Median query length | Avg passage length "
        "| Median passage length | Passages | Test queries |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.stats
        lines.append(
            f"| {r.dataset} | {s.mean_query_words:.2f} | {s.median_query_words:g} "
            f"| {s.mean_passage_words:.2f} | {s.median_passage_words:g} "
            f"| {s.passages:,} | {s.test_queries:,} |"
        )
    rows = comparison_rows(results)
    if rows:
        lines += ["", "| Dataset | Metric | Symmetric | Asymmetric | Asymmetric vs symmetric |"]
        lines.append("|---|---|---|---|---|")
        for row in rows:
            lines.append(
                f"| {row['dataset']} | {row['metric']} | {row['symmetric']:.3f} "
                f"| {row['asymmetric']:.3f} | {_fmt_change(row['change_pct'])} |"
            )
    systems = [s for s in SYSTEM_ORDER if any(s in r.metrics for r in results)]
    if systems:
        lines += ["", "| Dataset | Metric | " + " | ".join(systems) + " |"]
        lines.append("|---|---|" + "---|" * len(systems))
        for r in results:
            for metric in metric_names([r]):
                cells = [f"{r.metrics[s][metric]:.3f}" if s in r.metrics else "-" for s in systems]
                lines.append(f"| {r.dataset} | {metric} | " + " | ".join(cells) + " |")
    lines += _variants_table(results)
    notes = [f"- {r.dataset}: {note}" for r in results for note in r.notes]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _variants_table(results: Sequence[DatasetResult]) -> list[str]:
    """One row per system when chunked or hybrid variants ran (too many for columns)."""
    if not any(s not in SYSTEM_ORDER for r in results for s in r.metrics):
        return []
    metrics = metric_names(results)
    lines = ["", "| Dataset | System | " + " | ".join(metrics) + " |"]
    lines.append("|---|---|" + "---|" * len(metrics))
    for r in results:
        base = [s for s in SYSTEM_ORDER if s in r.metrics]
        for system in base + [s for s in r.metrics if s not in SYSTEM_ORDER]:
            cells = [f"{r.metrics[system].get(m, float('nan')):.4f}" for m in metrics]
            lines.append(f"| {r.dataset} | {system} | " + " | ".join(cells) + " |")
    return lines


def to_json(results: Sequence[DatasetResult], meta: dict[str, Any]) -> dict[str, Any]:
    """Machine-readable results: run metadata, per-dataset stats and metrics, comparison rows."""
    return {
        "meta": meta,
        "datasets": [
            {
                "dataset": r.dataset,
                "stats": asdict(r.stats),
                "metrics": r.metrics,
                "notes": r.notes,
            }
            for r in results
        ],
        "comparison": comparison_rows(results),
    }


def bar_chart(results: Sequence[DatasetResult], path: Path) -> Path:
    """Grouped bars: one group per dataset and metric, one bar per system."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    systems = [s for s in SYSTEM_ORDER if any(s in r.metrics for r in results)]
    groups = [(r, m) for r in results for m in metric_names([r])]
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups)), 4.5))
    for i, system in enumerate(systems):
        xs = [g + (i - (len(systems) - 1) / 2) * width for g in range(len(groups))]
        ys = [r.metrics.get(system, {}).get(m, 0.0) for r, m in groups]
        ax.bar(xs, ys, width=width, label=system)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{r.dataset}\n{m}" for r, m in groups], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title("Symmetric vs asymmetric retrieval")
    # Below the axes: above it the legend would hide bars near 1.0.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=max(1, len(systems)))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_all(
    results: Sequence[DatasetResult], out_dir: Path, meta: dict[str, Any]
) -> dict[str, Path]:
    """Write results.md, results.json and (when there are metrics) results.png into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "results.md"
    md.write_text(markdown(results), encoding="utf-8")
    js = out_dir / "results.json"
    js.write_text(json.dumps(to_json(results, meta), indent=2) + "\n", encoding="utf-8")
    paths = {"markdown": md, "json": js}
    if any(r.metrics for r in results):  # statistics alone have nothing to chart
        paths["chart"] = bar_chart(results, out_dir / "results.png")
    return paths
