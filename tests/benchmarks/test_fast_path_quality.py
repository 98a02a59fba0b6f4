"""benchmarks.fast_path_quality: a run killed mid-corpus resumes from its cache shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import fast_path_quality
from tools.model_package import bundled_model_path

FIXTURE = Path(__file__).parents[1] / "evaluate" / "fixtures" / "minibeir"


def test_a_killed_run_resumes_and_a_finished_one_loads_no_model(tmp_path, monkeypatch, capsys):
    argv = ["--model-dir", str(bundled_model_path()), "--dataset", str(FIXTURE)]
    argv += ["--backends", "exact", "--threads", "1", "--cache", str(tmp_path)]
    argv += ["--flush-every", "7"]
    real = fast_path_quality.embed_texts
    calls: list[int] = []

    def dies_on_the_third_batch(model, texts, content_type):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(len(texts))
        return real(model, texts, content_type)

    monkeypatch.setattr(fast_path_quality, "embed_texts", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        fast_path_quality.main(argv)
    assert calls == [7, 7]  # 14 of the 30 passages are on disk

    calls.clear()

    def counting(model, texts, content_type):
        calls.append(len(texts))
        return real(model, texts, content_type)

    monkeypatch.setattr(fast_path_quality, "embed_texts", counting)
    capsys.readouterr()
    fast_path_quality.main(argv)
    assert calls == [7, 7, 2, 7, 1]  # the 16 missing passages, then the 8 queries
    resumed = capsys.readouterr().out

    calls.clear()
    fast_path_quality.main(argv)
    assert calls == []
    again = capsys.readouterr().out
    row = next(line for line in resumed.splitlines() if line.startswith("| exact | "))
    cached = next(line for line in again.splitlines() if line.startswith("| exact | "))
    assert row.split("|")[2] == cached.split("|")[2]  # the same NDCG@10
    assert cached.rstrip().endswith("| cached |")  # no model was loaded
