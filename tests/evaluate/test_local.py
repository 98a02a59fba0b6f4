"""The ``local`` target end to end on the fixture, offline, with the bundled model."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from model import inference
from tools.evaluate.__main__ import main
from tools.evaluate.local import (
    bm25_run,
    dense_run,
    embed_texts,
    in_process,
    min_max_combine,
    run_local,
    server_embedder,
    without_prefixes,
)
from tools.evaluate.metrics import evaluate, ranked


def test_content_type_reaches_the_model_as_a_prefix(embedding_model):
    text = ["parks in New York City"]
    query = embed_texts(embedding_model, text, "query")
    passage = embed_texts(embedding_model, text, "passage")
    bare = embed_texts(without_prefixes(embedding_model), text, "query")
    assert query.shape == (1, 384)
    assert np.linalg.norm(query[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(query[0] @ passage[0]) < 0.9999
    assert float(query[0] @ bare[0]) < 0.9999
    # the handler prefixes, so embedding the prefixed text bare must give the same vector
    by_hand = embed_texts(without_prefixes(embedding_model), ["query: " + text[0]], "query")
    assert float(query[0] @ by_hand[0]) == pytest.approx(1.0, abs=1e-5)


def test_embedding_is_chunked_at_the_handlers_request_limit(embedding_model):
    many = [f"text number {i}" for i in range(embedding_model.config.max_texts + 3)]
    vectors = embed_texts(embedding_model, many, "passage")
    assert vectors.shape == (len(many), 384)
    alone = embed_texts(embedding_model, [many[-1]], "passage")
    assert float(vectors[-1] @ alone[0]) == pytest.approx(1.0, abs=1e-5)


def test_runs_hold_depth_hits_ranked_by_exact_cosine(dataset, embedding_model):
    runs = run_local(dataset, in_process(embedding_model)[0], depth=5, systems=("asymmetric",))
    doc_ids = list(dataset.corpus)
    passages = embed_texts(
        embedding_model, [dataset.corpus[d].indexed_text for d in doc_ids], "passage"
    )
    query = embed_texts(embedding_model, [dataset.queries["q3"]], "query")[0]
    expected = [doc_ids[i] for i in np.argsort(-(passages @ query))[:5]]
    assert ranked(runs["asymmetric"]["q3"]) == expected


def test_dense_run_in_blocks_equals_one_block(dataset, embedding_model):
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(50)]
    query_ids = [f"q{i}" for i in range(7)]
    whole = dense_run(queries, docs, query_ids, doc_ids, depth=5)
    blocks = dense_run(queries, docs, query_ids, doc_ids, depth=5, max_cells=120)  # 2 per block
    assert len(whole) == len(blocks) == 7
    for qid in query_ids:  # float32 BLAS may round differently per block shape
        assert ranked(whole[qid]) == ranked(blocks[qid])
        assert blocks[qid] == pytest.approx(whole[qid], rel=1e-5)
    assert all(len(hits) == 5 for hits in whole.values())


def test_bm25_retrieves_exactly_the_documents_sharing_a_term(dataset):
    run = bm25_run(dataset, depth=30)

    def terms(text: str) -> set[str]:
        return set(re.findall(r"\b\w\w+\b", text.lower()))  # bm25s' default token pattern

    for qid, query in dataset.queries.items():
        sharing = {d for d, p in dataset.corpus.items() if terms(p.indexed_text) & terms(query)}
        assert set(run[qid]) == sharing, qid
    assert ranked(run["q6"])[0] == "d21"  # "sort a list in python"


def test_hybrid_is_min_max_then_weighted_mean():
    bm25 = {"q": {"a": 10.0, "b": 5.0, "c": 0.0}}
    dense = {"q": {"b": 0.9, "c": 0.8, "d": 0.7}}
    combined = min_max_combine([bm25, dense], (0.3, 0.7), depth=10)["q"]
    assert combined == pytest.approx({"a": 0.3, "b": 0.15 + 0.7, "c": 0.35, "d": 0.0})


def test_unknown_system_is_refused(dataset, embedding_model):
    with pytest.raises(ValueError, match="unknown system"):
        run_local(dataset, in_process(embedding_model)[0], depth=5, systems=("sparse",))


def test_cli_local_prints_the_table_and_writes_the_files(fixture_dir, tmp_path, capsys):
    # --k twice: the table holds both cut-offs
    code = main(
        [
            "local",
            "--dataset",
            str(fixture_dir),
            "--model-dir",
            "bundled-minilm",
            "--k",
            "10",
            "--k",
            "3",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "| minibeir | 4.88 | 5 | 29.00 | 28 | 30 | 8 |" in out
    rows = re.findall(
        r"^\| minibeir \| (NDCG|MAP|Recall)@(\d+) \| ([0-9.]+) \| ([0-9.]+) "
        r"\| ([+-][0-9.]+%|n/a) \|$",
        out,
        flags=re.M,
    )
    assert {(m, k) for m, k, *_ in rows} == {
        (m, k) for m in ("NDCG", "MAP", "Recall") for k in ("3", "10")
    }
    data = json.loads((tmp_path / "results.json").read_text())
    metrics = data["datasets"][0]["metrics"]
    assert set(metrics) == {"symmetric", "asymmetric", "bm25", "hybrid"}
    # the printed numbers are the JSON numbers, rounded
    for metric, k, sym, asym, _ in rows:
        assert float(sym) == pytest.approx(metrics["symmetric"][f"{metric}@{k}"], abs=5e-4)
        assert float(asym) == pytest.approx(metrics["asymmetric"][f"{metric}@{k}"], abs=5e-4)
    # and they are the metrics of the runs, not something else
    runs = run_local_from_cli_defaults(fixture_dir)
    assert metrics["bm25"]["NDCG@10"] == pytest.approx(evaluate(*runs)["NDCG@10"])
    assert (tmp_path / "results.png").stat().st_size > 1000


def run_local_from_cli_defaults(fixture_dir):
    from tools.evaluate.datasets import load_beir
    from tools.evaluate.metrics import drop_identical_ids

    ds = load_beir(fixture_dir)
    return ds.qrels, drop_identical_ids(bm25_run(ds, depth=11))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--dataset", "no-such-set"],
            "error: 'no-such-set': not a directory and not a known BEIR",
        ),
        (["--dataset", "tests"], "error: tests/corpus.jsonl: file not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code = main(["stats", *argv, "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1


def test_cli_stats_only(fixture_dir, tmp_path, capsys):
    assert main(["stats", "--dataset", str(fixture_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| minibeir | 4.88 | 5 | 29.00 | 28 | 30 | 8 |" in out
    assert "Asymmetric vs symmetric" not in out
    assert (tmp_path / "results.md").is_file() and not (tmp_path / "results.png").exists()


@pytest.fixture
def model_server(embedding_model):
    """Our handler behind HTTP the way the toolkit calls it (transform_fn).

    A lightweight stand-in for ``python -m tools.serve`` (which starts Java):
    the functions are the handler's own, and their errors become HTTP 400 with
    the message, as the toolkit does.
    """
    requests_seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests_seen.append(json.loads(body))
            try:
                assert self.path == "/invocations", self.path
                out = inference.transform_fn(
                    embedding_model,
                    body,
                    self.headers.get("Content-Type"),
                    self.headers.get("Accept"),
                ).encode()
                status = 200
            except (ValueError, AssertionError) as exc:
                out, status = str(exc).encode(), 400
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests_seen
    server.shutdown()
    server.server_close()


def test_model_server_target_ranks_like_in_process(dataset, embedding_model, model_server):
    url, seen = model_server
    systems = ("symmetric", "asymmetric")
    via_http = run_local(dataset, server_embedder(url, batch=16), depth=5, systems=systems)
    direct = run_local(dataset, in_process(embedding_model)[0], depth=5, systems=systems)
    for system in systems:
        for qid in dataset.qrels:
            assert ranked(via_http[system][qid]) == ranked(direct[system][qid])
    assert {r["content_type"] for r in seen} == {"query", "passage"}
    assert max(len(r["texts"]) for r in seen) == 16


def test_model_server_errors_carry_the_handlers_message(model_server):
    url, _ = model_server
    with pytest.raises(RuntimeError, match=r"HTTP 400: content_type: \"title\" is not one of"):
        server_embedder(url)(["x"], "title")


def test_symmetric_none_embeds_without_prefixes_and_needs_the_model_in_process(
    dataset, embedding_model
):
    embed, bare = in_process(embedding_model)
    with pytest.raises(ValueError, match="--symmetric none needs the model in-process"):
        run_local(dataset, embed, depth=5, systems=("symmetric",), symmetric_mode="none")
    none = run_local(
        dataset, embed, depth=5, systems=("symmetric",), symmetric_mode="none", embed_bare=bare
    )
    doc_ids = list(dataset.corpus)
    passages = bare([dataset.corpus[d].indexed_text for d in doc_ids], "passage")
    query = bare([dataset.queries["q2"]], "query")[0]
    assert ranked(none["symmetric"]["q2"]) == [
        doc_ids[i] for i in np.argsort(-(passages @ query))[:5]
    ]


def test_cli_max_queries_keeps_the_first_n_test_queries(fixture_dir, tmp_path, capsys):
    argv = ["stats", "--dataset", str(fixture_dir), "--max-queries", "3", "--out", str(tmp_path)]
    assert main(argv) == 0
    # q1..q3 have 5, 5 and 7 words
    assert "| minibeir | 5.67 | 5 | 29.00 | 28 | 30 | 3 |" in capsys.readouterr().out


def test_a_directory_without_a_model_is_refused(tmp_path):
    from tools.evaluate.local import load_embedding_model

    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_embedding_model(tmp_path)


def test_local_model_defaults_to_one_thread_like_each_endpoint_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One torch thread per process unless EMBEDDING_THREADS or ``threads`` says otherwise."""
    from model import inference
    from tools.evaluate.local import BUNDLED_MODEL, load_embedding_model

    monkeypatch.delenv("EMBEDDING_THREADS", raising=False)
    monkeypatch.setattr(inference, "available_cores", lambda: 8)
    assert load_embedding_model(BUNDLED_MODEL).config.threads == 1
    monkeypatch.setenv("EMBEDDING_THREADS", "3")
    assert load_embedding_model(BUNDLED_MODEL).config.threads == 3
