"""The ``stack`` target against the OpenSearch emulator (real HTTP, SigV4, spec-checked bodies).

The emulator's embedder is our real inference handler with the bundled model,
so the ``stack`` run must rank exactly as the ``local`` run does for the two
dense systems: that is the end-to-end check that the tool sends the right
content types through the right APIs (neural query -> ``query``, ingest ->
``passage``, symmetric ``_predict`` -> ``passage``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.evaluate.search_emulator import SearchEmulator
from tests.support.domain_fixtures import e5_model_config
from tests.support.opensearch_emulator import Principal
from tools.evaluate.local import embed_texts, in_process, run_local
from tools.evaluate.metrics import evaluate, ranked
from tools.evaluate.stack import StackError, StackTarget
from tools.opensearch import SignedHttpClient

REGION = "eu-west-1"
MASTER = Principal("arn:aws:iam::111122223333:role/eval-admin", "FAKEKEYEVALADMIN", "secret-admin")
CONNECTOR_ROLE = "arn:aws:iam::111122223333:role/connector"
DEPTH = 11


@pytest.fixture(scope="module")
def emulator(embedding_model) -> Iterator[SearchEmulator]:
    """One emulated domain for the module, embedding with our real handler."""

    memo: dict[tuple[str, str], list[float]] = {}  # the handler is deterministic: embed once

    def embedder(texts: list[str], content_type: str, model: dict[str, Any]) -> list[list[float]]:
        todo = [t for t in texts if (t, content_type) not in memo]
        if todo:
            vectors = embed_texts(embedding_model, todo, content_type).tolist()
            memo.update(zip(((t, content_type) for t in todo), vectors, strict=True))
        return [memo[(t, content_type)] for t in texts]

    emu = SearchEmulator(
        master=MASTER,
        principals=[],
        region=REGION,
        pass_role={MASTER.arn: {CONNECTOR_ROLE}},
        deploy_polls=1,
        embedder=embedder,
    )
    with emu:
        yield emu


@pytest.fixture(autouse=True)
def no_spec_violations(request):
    """Every exchange of every test here must match the OpenSearch API specification."""
    yield
    if "emulator" in request.fixturenames:
        emu = request.getfixturevalue("emulator")
        violations, emu.violations[:] = list(emu.violations), []
        assert violations == []


def make_client(emu: SearchEmulator, **kwargs: Any) -> SignedHttpClient:
    """The evaluation's client configuration (retries on), without real waiting."""
    kwargs.setdefault("max_retries", 8)
    return SignedHttpClient(
        emu.endpoint, REGION, lambda: MASTER.credentials, sleep=lambda _s: None, **kwargs
    )


@pytest.fixture(scope="module")
def model_id(emulator: SearchEmulator) -> str:
    """An asymmetric remote model registered and deployed like the ml_setup Lambda does it."""
    client = make_client(emulator)
    connector = client.ok(
        "POST",
        "/_plugins/_ml/connectors/_create",
        body={
            "name": "e5",
            "description": "test",
            "version": 1,
            "protocol": "aws_sigv4",
            "parameters": {"region": REGION, "service_name": "sagemaker"},
            "credential": {"roleArn": CONNECTOR_ROLE},
            "actions": [
                {
                    "action_type": "predict",
                    "method": "POST",
                    "url": f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/e5/invocations",
                    "headers": {"content-type": "application/json"},
                    "request_body": '{ "texts": ${parameters.texts}, '
                    '"content_type": "${parameters.content_type}" }',
                }
            ],
        },
    )["connector_id"]
    mid = client.ok(
        "POST",
        "/_plugins/_ml/models/_register",
        body={
            "name": "e5-asymmetric",
            "function_name": "remote",
            "connector_id": connector,
            "model_config": e5_model_config(),
        },
    )["model_id"]
    client.ok("POST", f"/_plugins/_ml/models/{mid}/_deploy")
    for _ in range(5):
        if client.ok("GET", f"/_plugins/_ml/models/{mid}")["model_state"] == "DEPLOYED":
            return mid
    raise AssertionError("model did not deploy in the emulator")


def leftovers(emu: SearchEmulator) -> list[str]:
    return [i for i in emu.indices if i.startswith("eval-")] + list(emu.pipelines)


def test_stack_dense_runs_rank_exactly_like_local_and_everything_is_deleted(
    emulator, model_id, dataset, embedding_model, capsys
):
    target = StackTarget(make_client(emulator), model_id=model_id, bulk_docs=7, progress=False)
    stack_runs = target.run(dataset, depth=DEPTH)
    local_runs = run_local(
        dataset, in_process(embedding_model)[0], depth=DEPTH, systems=("symmetric", "asymmetric")
    )
    for system in ("symmetric", "asymmetric"):
        for qid in dataset.qrels:
            assert ranked(stack_runs[system][qid]) == ranked(local_runs[system][qid]), (system, qid)
    # The symmetric and asymmetric rankings must differ somewhere, or the test
    # above could not tell the content types apart.
    assert any(
        ranked(stack_runs["symmetric"][q]) != ranked(stack_runs["asymmetric"][q])
        for q in dataset.qrels
    )
    for system in ("bm25", "hybrid"):
        scores = evaluate(dataset.qrels, stack_runs[system], [10])
        assert 0.5 < scores["NDCG@10"] <= 1.0, (system, scores)
    assert target.last_index is not None
    assert leftovers(emulator) == []
    assert emulator.violations == []
    assert "ingested 30 documents" in capsys.readouterr().out
    calls = emulator.calls()
    assert sum(1 for c in calls if c[2].endswith("/_bulk")) == 5  # ceil(30 / 7)
    assert any(c[2] == f"/{target.last_index}" and c[1] == "DELETE" for c in calls)


def test_ingest_survives_throttled_requests_and_items_and_checks_the_count(
    emulator, model_id, dataset
):
    client = make_client(emulator)
    emulator.faults.throttle(2, path_prefix="/eval-")  # whole requests answered 429
    emulator.reject_items = 9  # items answered 429 inside a 200 bulk response
    emulator.remote_throttle_items = 4  # items failed by a throttled endpoint (relayed as 400)
    target = StackTarget(client, model_id=model_id, bulk_docs=10, progress=False)
    runs = target.run(dataset, depth=DEPTH, systems=("bm25",))
    assert emulator.faults.pending() == 0
    assert emulator.reject_items == emulator.remote_throttle_items == 0
    assert client.retries_done >= 2
    assert set(runs) == {"bm25"}
    assert leftovers(emulator) == []


def test_a_refused_document_stops_the_run_and_the_index_is_still_deleted(
    emulator, model_id, dataset
):
    emulator.refuse_docs = {"d17"}
    try:
        target = StackTarget(make_client(emulator), model_id=model_id, progress=False)
        with pytest.raises(StackError, match=r"document 'd17' was refused \(HTTP 400\)"):
            target.run(dataset, depth=DEPTH)
    finally:
        emulator.refuse_docs = set()
    assert leftovers(emulator) == []


def test_a_failing_search_still_deletes_index_and_pipeline(emulator, model_id, dataset):
    target = StackTarget(make_client(emulator, max_retries=1), model_id=model_id, progress=False)
    # 503 on every search after ingest: retried once, then the run fails.
    emulator.faults.unavailable(100, path_prefix="/eval-")
    original = emulator.faults.take

    def only_searches(arn: str, method: str, path: str):
        return original(arn, method, path) if path.endswith("/_search") else None

    emulator.faults.take = only_searches  # type: ignore[method-assign]
    try:
        with pytest.raises(StackError, match=r"_search: HTTP 503"):
            target.run(dataset, depth=DEPTH, systems=("hybrid", "bm25"))
    finally:
        emulator.faults.take = original  # type: ignore[method-assign]
        emulator.faults._rules.clear()
    assert leftovers(emulator) == []


def test_unknown_model_fails_at_index_creation_with_the_servers_reason(emulator, dataset):
    target = StackTarget(make_client(emulator), model_id="no-such-model", progress=False)
    with pytest.raises(StackError, match=r"PUT /eval-minibeir-\w+: HTTP 400: .*no-such-model"):
        target.run(dataset, depth=DEPTH)
    assert leftovers(emulator) == []


def test_requests_are_sigv4_signed_for_the_es_service(emulator):
    wrong_region = SignedHttpClient(emulator.endpoint, "us-west-2", lambda: MASTER.credentials)
    response = wrong_region.request("GET", "/_cluster/health")
    assert response.status == 403
    assert make_client(emulator).request("GET", "/_cluster/health").status == 200


def test_a_bare_host_name_means_https():
    client = SignedHttpClient(
        "search-x.eu-west-1.es.amazonaws.com", REGION, lambda: MASTER.credentials
    )
    assert client.base == "https://search-x.eu-west-1.es.amazonaws.com"
    with pytest.raises(ValueError, match="not a domain endpoint"):
        SignedHttpClient("ftp://host", REGION, lambda: MASTER.credentials)


def test_cli_stack_prints_the_table_with_default_credentials(
    emulator, model_id, fixture_dir, tmp_path, capsys, monkeypatch
):
    from tools.evaluate.__main__ import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MASTER.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MASTER.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    argv = ["stack", "--dataset", str(fixture_dir), "--endpoint", emulator.endpoint]
    argv += ["--model-id", model_id, "--region", REGION, "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| minibeir | 4.88 | 5 | 29.00 | 28 | 30 | 8 |" in out
    for metric in ("NDCG@10", "MAP@10", "Recall@10"):
        assert re.search(rf"^\| minibeir \| {metric} \| [0-9.]+ \| [0-9.]+ \| ", out, re.M)
    assert "| Dataset | Metric | symmetric | asymmetric | bm25 | hybrid |" in out
    assert leftovers(emulator) == []


def test_cli_stack_without_region_or_credentials_is_one_line(tmp_path, capsys, monkeypatch):
    from tools.evaluate.__main__ import main

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv = ["stack", "--dataset", "tests/evaluate/fixtures/minibeir", "--endpoint", "https://x"]
    assert main([*argv, "--model-id", "m", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: no AWS region: pass --region or configure one\n"


def test_a_refused_delete_is_reported_by_name_without_hiding_the_results(
    emulator, model_id, dataset, capsys
):
    original = emulator.faults.take
    emulator.faults.add(1, 403, {"Message": "explicit deny"}, path_prefix="/eval-")

    def only_deletes(arn: str, method: str, path: str):
        return original(arn, method, path) if method == "DELETE" else None

    emulator.faults.take = only_deletes  # type: ignore[method-assign]
    target = StackTarget(make_client(emulator), model_id=model_id, progress=False)
    try:
        runs = target.run(dataset, depth=DEPTH, systems=("bm25",))
    finally:
        emulator.faults.take = original  # type: ignore[method-assign]
    assert set(runs["bm25"]) == set(dataset.qrels)
    err = capsys.readouterr().err
    assert (
        f"warning: DELETE /{target.last_index}: HTTP 403: explicit deny - delete it by hand" in err
    )
    assert leftovers(emulator) == [target.last_index]
    make_client(emulator).ok("DELETE", f"/{target.last_index}")
    assert leftovers(emulator) == []


def test_hybrid_runs_through_the_deployed_pipeline_and_leaves_it_alone(emulator, model_id, dataset):
    """What users get: the environment's own pipeline, used as is, never changed or deleted."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))
    from ml_setup import search_pipeline
    from ml_setup.properties import Props

    spec = search_pipeline.Spec.parse(
        Props({"Name": "documents-hybrid", "Weights": ["0.3", "0.7"]}, "test")
    )
    client = make_client(emulator)
    client.ok("PUT", "/_search/pipeline/documents-hybrid", spec.body())
    deployed = json.loads(json.dumps(emulator.pipelines["documents-hybrid"]))
    try:
        target = StackTarget(
            client, model_id=model_id, progress=False, search_pipeline="documents-hybrid"
        )
        before = len(emulator.calls())
        runs = target.run(dataset, depth=DEPTH, systems=("hybrid",))
        scores = evaluate(dataset.qrels, runs["hybrid"], [10])
        assert 0.5 < scores["NDCG@10"] <= 1.0
        pipeline_calls = [c for c in emulator.calls()[before:] if "/_search/pipeline/" in c[2]]
        assert pipeline_calls == []  # neither created nor deleted
        assert emulator.pipelines["documents-hybrid"] == deployed
    finally:
        emulator.pipelines.pop("documents-hybrid", None)
    assert leftovers(emulator) == []


def test_a_chunked_index_is_measured_by_best_chunk_for_both_dense_systems(
    emulator, model_id, dataset, embedding_model
):
    """``--chunking``: the stored layout is chunks, and both dense systems score a document
    by its best chunk (neural: the server's nested max; symmetric: our nested knn),
    which is exactly the max over chunks computed here from the same chunks."""
    from tests.support.opensearch_emulator import chunk_text, parse_chunking

    steps = [{"algorithm": "fixed_token_length",
              "parameters": {"token_limit": 12, "overlap_rate": 0.25}}]  # fmt: skip
    target = StackTarget(
        make_client(emulator), model_id=model_id, progress=False, chunking=steps, keep_index=True
    )
    try:
        runs = target.run(dataset, depth=DEPTH, systems=("symmetric", "asymmetric"))
        index = emulator.indices[target.last_index]
        info = index.mappings["properties"]["passage_text_semantic_info"]["properties"]
        assert info["chunks"]["type"] == "nested"
        stored = {d: s["passage_text_semantic_info"]["chunks"] for d, s in index.docs.items()}
    finally:
        emulator.indices.pop(target.last_index, None)
    chunkers = parse_chunking(steps)
    chunks = {d: chunk_text(p.indexed_text, chunkers) for d, p in dataset.corpus.items()}
    assert {d: [c["text"] for c in cs] for d, cs in stored.items()} == chunks
    assert sum(len(c) for c in chunks.values()) > len(chunks), "some documents have 2+ chunks"
    vectors = {
        d: embed_texts(embedding_model, texts, "passage") for d, texts in chunks.items() if texts
    }
    for system, content_type in (("asymmetric", "query"), ("symmetric", "passage")):
        for qid in dataset.qrels:
            (query,) = embed_texts(embedding_model, [dataset.queries[qid]], content_type)
            best = {d: float((v @ query).max()) for d, v in vectors.items()}
            expected = ranked({d: (1 + s) / 2 for d, s in best.items()})[:DEPTH]
            assert ranked(runs[system][qid]) == expected, (system, qid)
    assert leftovers(emulator) == []


def test_cli_chunking_takes_true_or_a_json_list_of_steps(capsys):
    from tools.evaluate.__main__ import parse_args

    base = ["stack", "--dataset", "x", "--endpoint", "https://x", "--model-id", "m"]
    assert parse_args(base).chunking is False
    assert parse_args([*base, "--chunking", "true"]).chunking is True
    steps = '[{"algorithm": "delimiter", "parameters": {"delimiter": "\\n"}}]'
    assert parse_args([*base, "--chunking", steps]).chunking == json.loads(steps)
    for bad in ("yes", "[]", '{"algorithm": "delimiter"}', "[1]"):
        with pytest.raises(SystemExit):
            parse_args([*base, "--chunking", bad])
        assert "--chunking" in capsys.readouterr().err
