"""In-process tests of model/inference.py: contract, exactness, limits, configuration."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest
import torch

from model import inference
from model.inference import (
    EmbeddingRequest,
    HandlerConfig,
    RequestError,
    decode_request,
    embed_request,
    parse_request,
    plan_batches,
    transform_fn,
)
from tests.model.helpers import LONG_TEXTS, SHORT_TEXTS, long_text, row_cosines, st_encode

ROOT = Path(__file__).resolve().parents[2]


def invoke(loaded: inference.EmbeddingModel, body: object) -> list[list[float]]:
    """Run one request through transform_fn like the toolkit does."""
    return json.loads(transform_fn(loaded, json.dumps(body), "application/json", "*/*"))


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize(
    ("body", "texts", "content_type"),
    [
        ({"texts": ["a", "b"], "content_type": "query"}, ["a", "b"], "query"),
        ({"texts": ["a"], "content_type": "PASSAGE"}, ["a"], "passage"),
        ({"texts": ["a"], "content_type": " Query "}, ["a"], "query"),
        ({"parameters": {"texts": ["a"], "content_type": "QUERY"}}, ["a"], "query"),
    ],
    ids=["plain", "uppercase", "mixed-case-padded", "wrapped"],
)
def test_parse_request_accepts_both_shapes_and_any_case(
    body: dict, texts: list[str], content_type: str
) -> None:
    assert parse_request(body) == EmbeddingRequest(texts=texts, content_type=content_type)


BAD_BODIES = [
    ([1, 2], "body", "must be a JSON object, got array"),
    ({"parameters": "x"}, "parameters", "must be a JSON object, got string"),
    ({"content_type": "query"}, "texts", "is missing"),
    ({"texts": "one text", "content_type": "query"}, "texts", "must be a list of strings"),
    ({"texts": {"a": 1}, "content_type": "query"}, "texts", "got object"),
    ({"texts": [], "content_type": "query"}, "texts", "must not be empty"),
    ({"texts": ["ok", None], "content_type": "query"}, "texts[1]", "got null"),
    ({"texts": ["ok", "ok", 3], "content_type": "query"}, "texts[2]", "got number"),
    ({"texts": [["nested"]], "content_type": "query"}, "texts[0]", "got array"),
    ({"texts": ["ok"]}, "content_type", "is missing"),
    ({"texts": ["ok"], "content_type": "document"}, "content_type", '"document" is not one of'),
    ({"texts": ["ok"], "content_type": None}, "content_type", "null is not one of"),
    ({"texts": ["ok"], "content_type": 1}, "content_type", "number is not one of"),
]


@pytest.mark.parametrize(("body", "field", "problem"), BAD_BODIES)
def test_parse_request_names_the_field(body: object, field: str, problem: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_request(body)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert problem in str(caught.value)


def test_decode_request_decodes_bytes_and_charset_content_types() -> None:
    body = json.dumps({"texts": ["é"], "content_type": "query"}).encode()
    for content_type in ("application/json", "application/json; charset=utf-8", None):
        assert decode_request(body, content_type).texts == ["é"]
    assert decode_request(bytearray(body), "Application/JSON").content_type == "query"


@pytest.mark.parametrize(
    ("data", "content_type", "field", "problem"),
    [
        (b'{"texts": ["a"], "content_type": "query"}', "text/plain", "Content-Type", "text/plain"),
        (b"a,b", "text/csv", "Content-Type", "send application/json"),
        (b"not json", "application/json", "body", "not valid JSON"),
        (b'{"texts": ["a"]', "application/json", "body", "not valid JSON"),
        (
            b"\xff\xfe",
            "application/json",
            "body",
            "is not valid UTF-8 (invalid start byte at byte 0)",
        ),
        (
            b'{"texts": ["a\xc3"]}',
            None,
            "body",
            "not valid UTF-8 (invalid continuation byte at byte 13)",
        ),
        (b"[" * 5000 + b"]" * 5000, "application/json", "body", "JSON is nested too deep"),
        (b'{"parameters": {"texts": [[[[[[["a"]]]]]]]}}', None, "body", "nested too deep"),
        (
            b'{"texts": ["a"], "content_type": "query", "n": ' + b"7" * 5000 + b"}",
            None,
            "body",
            "has an integer of 5000 digits; at most 4300",
        ),
        (
            b'{"texts": ["ok", "ab\\ud800c"], "content_type": "query"}',
            None,
            "texts[1]",
            "has a lone surrogate \\ud800 at character 2",
        ),
    ],
    ids=[
        "text-plain",
        "csv",
        "not-json",
        "truncated",
        "utf8-start",
        "utf8-end",
        "deep-recursion",
        "deep",
        "long-int",
        "surrogate",
    ],
)
def test_decode_request_names_each_bad_body(
    data: bytes, content_type: str | None, field: str, problem: str
) -> None:
    with pytest.raises(RequestError) as caught:
        decode_request(data, content_type)
    assert caught.value.field == field
    assert problem in str(caught.value), str(caught.value)


def test_response_is_a_bare_json_array_and_honours_accept(
    loaded: inference.EmbeddingModel,
) -> None:
    body = json.dumps({"texts": ["a", "b"], "content_type": "query"})
    for accept in (None, "*/*", "application/json", "application/json; charset=utf-8"):
        decoded = json.loads(transform_fn(loaded, body, "application/json", accept))
        assert torch.tensor(decoded).shape == (2, 384)
    with pytest.raises(RequestError, match=r"^Accept: text/csv is not supported"):
        transform_fn(loaded, body, "application/json", "text/csv")


class _Refused(AssertionError):
    """Raised by the model stand-in: reaching it means the check came too late."""


@pytest.fixture
def untouchable(
    loaded: inference.EmbeddingModel, monkeypatch: pytest.MonkeyPatch
) -> inference.EmbeddingModel:
    """The loaded model with its encoder (and the embedding step) made to fail if called."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise _Refused("the model ran")

    monkeypatch.setattr(inference, "embed_ids", refuse)
    return dataclasses.replace(loaded, model=refuse, encoder=refuse)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "message"),
    [
        (b'{"texts": ["a"], "content_type": "query"}', "application/json", "text/csv", "^Accept: "),
        (b'{"texts": ["a"], "content_type": "query"}', "text/plain", None, "^Content-Type: "),
        (b"\xff", "application/json", None, "^body: is not valid UTF-8"),
        (b'{"texts": "a", "content_type": "query"}', None, None, "^texts: must be a list"),
    ],
    ids=["accept", "content-type", "utf8", "shape"],
)
def test_bad_headers_and_bodies_are_refused_before_the_model_runs(
    untouchable: inference.EmbeddingModel,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    message: str,
) -> None:
    with pytest.raises(RequestError, match=message):
        transform_fn(untouchable, body, content_type, accept)


def test_over_budget_requests_are_refused_before_the_model_runs(
    untouchable: inference.EmbeddingModel,
) -> None:
    """Budgets in tokens after truncation and characters before tokenising."""
    window = untouchable.max_tokens
    cfg = untouchable.config
    # Texts of more than a window each count as one full window after truncation.
    full = long_text(800)
    count = cfg.max_request_tokens // window + 1
    body = json.dumps({"texts": [full] * count, "content_type": "passage"})
    with pytest.raises(RequestError) as caught:
        transform_fn(untouchable, body, None, None)
    assert str(caught.value) == (
        f"texts: has {count * window} tokens after truncation to {window} per text; the request "
        f"budget is {cfg.max_request_tokens} (EMBEDDING_MAX_REQUEST_TOKENS); split the request"
    )
    many_chars = ["x" * cfg.max_text_chars] * (cfg.max_request_chars // cfg.max_text_chars + 1)
    body = json.dumps({"texts": many_chars, "content_type": "passage"})
    with pytest.raises(
        RequestError, match=r"^texts: has \d+ characters in all; the request budget"
    ):
        transform_fn(untouchable, body, None, None)


def test_the_largest_request_inside_the_budget_is_embedded(model_path: Path) -> None:
    """Exactly at the token budget passes; one token more is refused."""
    tight = inference.load_model(model_path, HandlerConfig(threads=2, max_request_tokens=40))
    tokens = len(tight.tokenizer("query: " + "tide " * 5)["input_ids"])
    per_text = tokens
    texts = ["tide " * 5] * (40 // per_text)
    rest = 40 - per_text * len(texts)
    assert rest < per_text
    vectors = embed_request(EmbeddingRequest(texts, "query"), tight)
    assert vectors.shape == (len(texts), 384)
    over = dataclasses.replace(
        tight,
        config=dataclasses.replace(tight.config, max_request_tokens=per_text * len(texts) - 1),
    )
    with pytest.raises(RequestError, match=f"^texts: has {per_text * len(texts)} tokens"):
        embed_request(EmbeddingRequest(texts, "query"), over)


def test_response_has_one_unit_vector_per_text_in_input_order(
    loaded: inference.EmbeddingModel,
) -> None:
    texts = [LONG_TEXTS[3], "b", LONG_TEXTS[0], "a longer query about tides", ""]
    vectors = invoke(loaded, {"texts": texts, "content_type": "passage"})
    assert len(vectors) == len(texts)
    tensor = torch.tensor(vectors)
    assert tensor.shape == (len(texts), 384)
    assert torch.allclose(tensor.norm(dim=1), torch.ones(len(texts)), atol=1e-5)
    # Order: each row equals that text embedded alone.
    for index, text in enumerate(texts):
        alone = torch.tensor(invoke(loaded, {"texts": [text], "content_type": "passage"}))
        assert row_cosines(alone, tensor[index : index + 1]).item() >= 0.99999, index


# --------------------------------------------------------------------------- exactness


def test_prefix_follows_content_type_and_matches_sentence_transformers(
    loaded: inference.EmbeddingModel, reference: object
) -> None:
    texts = SHORT_TEXTS + LONG_TEXTS
    for content_type, prefix in (("query", "query: "), ("passage", "passage: ")):
        ours = torch.tensor(invoke(loaded, {"texts": texts, "content_type": content_type}))
        expected = st_encode(reference, [prefix + text for text in texts])
        cosines = row_cosines(ours, expected)
        assert cosines.min().item() >= 0.9999, (content_type, cosines.tolist())
    # And the two prefixes really give different vectors.
    as_query = torch.tensor(invoke(loaded, {"texts": texts, "content_type": "query"}))
    as_passage = torch.tensor(invoke(loaded, {"texts": texts, "content_type": "passage"}))
    assert row_cosines(as_query, as_passage).max().item() < 0.999


def test_texts_beyond_the_window_are_truncated_like_sentence_transformers(
    loaded: inference.EmbeddingModel, reference: object
) -> None:
    assert loaded.max_tokens == 512  # sentence_bert_config.json of E5
    huge = long_text(3000, seed=5)
    assert len(loaded.tokenizer(huge)["input_ids"]) > 4 * loaded.max_tokens
    ours = torch.tensor(invoke(loaded, {"texts": [huge], "content_type": "passage"}))
    expected = st_encode(reference, ["passage: " + huge])
    assert row_cosines(ours, expected).item() >= 0.9999


def test_batch_invariance_alone_vs_beside_long_texts(loaded: inference.EmbeddingModel) -> None:
    """The acceptance check; the baseline test below proves this scenario can fail."""
    shorts = ["query: " + text for text in SHORT_TEXTS]
    # Short texts scattered among long passages (first, middle, last positions).
    batch = ["passage: " + text for text in LONG_TEXTS + LONG_TEXTS[:4]]
    positions = [0, 3, 6, 10, 13]
    for position, short in zip(positions, shorts, strict=True):
        batch.insert(position, short)
    beside = inference.embed(loaded, batch)
    for position, short in zip(positions, shorts, strict=True):
        alone = inference.embed(loaded, [short])
        cosine = row_cosines(alone, beside[position : position + 1]).item()
        assert cosine >= 0.99999, (short, position, cosine)


def test_the_invariance_scenario_catches_unmasked_mean(loaded: inference.EmbeddingModel) -> None:
    """Same scenario with the reference handler's algorithm: padding leaks into the mean."""
    from benchmarks.model_throughput import baseline_embed

    batch = ["query: how do tides work"] + ["passage: " + text for text in LONG_TEXTS]
    alone = baseline_embed(loaded, batch[:1])
    beside = baseline_embed(loaded, batch)[:1]
    assert row_cosines(alone, beside).item() < 0.99


# --------------------------------------------------------------------------- batching


LENGTHS = [5, 300, 17, 17, 2, 256, 90, 1, 64, 128, 33, 512, 511]


@pytest.mark.parametrize("budget", [1, 50, 300, 4096])
@pytest.mark.parametrize("overhead", [0, 64, 10_000])
def test_plan_batches_covers_every_text_once_within_the_budget(budget: int, overhead: int) -> None:
    batches = plan_batches(LENGTHS, budget, overhead)
    flat = [index for batch in batches for index in batch]
    assert sorted(flat) == list(range(len(LENGTHS)))
    # Longest first, so each sub-batch's padding is set by its first member.
    assert [LENGTHS[i] for i in flat] == sorted(LENGTHS, reverse=True)
    for batch in batches:
        padded = len(batch) * max(LENGTHS[i] for i in batch)
        assert padded <= budget or len(batch) == 1


def test_plan_batches_groups_equal_lengths_and_spares_short_texts_from_padding() -> None:
    assert plan_batches([40] * 12, 4096, 64) == [list(range(12))]
    # A short query is not padded to a 512-token passage to save one pass...
    assert plan_batches([512, 12], 4096, 64) == [[0], [1]]
    # ...unless a pass costs more than that padding (a very high overhead).
    assert plan_batches([512, 12], 4096, 100_000) == [[0, 1]]
    # Without overhead, padding is never worth it.
    assert all(len(batch) == 1 for batch in plan_batches([9, 8, 7, 6], 4096, 0))
    # The budget caps a group even when grouping would be cheaper.
    assert plan_batches([100] * 8, 400, 100_000) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_sub_batching_does_not_change_the_vectors(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every text alone (budget 1) and all texts in one padded pass give the same vectors."""
    texts = ["passage: " + text for text in SHORT_TEXTS + LONG_TEXTS]
    alone = inference.embed(
        inference.load_model(model_path, HandlerConfig(threads=2, token_budget=1)), texts
    )
    plans: list[list[list[int]]] = []
    real_plan = inference.plan_batches
    monkeypatch.setattr(inference, "FORWARD_OVERHEAD_TOKENS", 10**9)
    monkeypatch.setattr(
        inference, "plan_batches", lambda *args: plans.append(real_plan(*args)) or plans[-1]
    )
    together = inference.embed(
        inference.load_model(model_path, HandlerConfig(threads=2, token_budget=100_000)), texts
    )
    assert len(plans[-1]) == 1 and len(plans[-1][0]) == len(texts)  # really one padded pass
    assert row_cosines(alone, together).min().item() >= 0.99999


# --------------------------------------------------------------------------- limits


def test_limits_name_the_field_and_the_variable(model_path: Path) -> None:
    capped = inference.load_model(
        model_path, HandlerConfig(threads=1, max_texts=3, max_text_chars=10)
    )
    with pytest.raises(RequestError, match=r"^texts: has 4 texts; at most 3 .*EMBEDDING_MAX_TEXTS"):
        embed_request(EmbeddingRequest(["a"] * 4, "query"), capped)
    with pytest.raises(
        RequestError, match=r"^texts\[1\]: has 11 characters; at most 10 .*EMBEDDING_MAX_TEXT_CHARS"
    ):
        embed_request(EmbeddingRequest(["a", "b" * 11], "query"), capped)
    assert embed_request(EmbeddingRequest(["a"] * 3, "query"), capped).shape == (3, 384)
    assert embed_request(EmbeddingRequest(["b" * 10], "query"), capped).shape == (1, 384)


def test_configured_prefixes_are_used(loaded: inference.EmbeddingModel, model_path: Path) -> None:
    custom = inference.load_model(
        model_path, HandlerConfig(threads=1, query_prefix="", passage_prefix="Represent: ")
    )
    text = "tidal energy"
    got_query = embed_request(EmbeddingRequest([text], "query"), custom)
    got_passage = embed_request(EmbeddingRequest([text], "passage"), custom)
    assert row_cosines(got_query, inference.embed(loaded, [text])).item() >= 0.99999
    expected_passage = inference.embed(loaded, ["Represent: " + text])
    assert row_cosines(got_passage, expected_passage).item() >= 0.99999


# --------------------------------------------------------------------------- configuration


def test_config_defaults_are_e5s() -> None:
    cfg = HandlerConfig.from_env({})
    assert (cfg.query_prefix, cfg.passage_prefix) == ("query: ", "passage: ")
    assert cfg.backend == "exact"
    assert (cfg.max_request_tokens, cfg.max_request_chars) == (5120, 1_000_000)
    assert cfg.max_tokens is None
    assert cfg.max_texts >= 10  # neural-search's default ingest batch must fit


def test_config_reads_every_variable() -> None:
    cfg = HandlerConfig.from_env(
        {
            "EMBEDDING_QUERY_PREFIX": "",
            "EMBEDDING_PASSAGE_PREFIX": "doc: ",
            "EMBEDDING_MAX_TEXTS": "12",
            "EMBEDDING_MAX_TEXT_CHARS": "999",
            "EMBEDDING_MAX_TOKENS": "128",
            "EMBEDDING_TOKEN_BUDGET": "2048",
            "EMBEDDING_MAX_REQUEST_CHARS": "5000",
            "EMBEDDING_MAX_REQUEST_TOKENS": "4000",
            "EMBEDDING_THREADS": "3",
            "EMBEDDING_BACKEND": "bf16",
        }
    )
    assert cfg == HandlerConfig(
        query_prefix="",
        passage_prefix="doc: ",
        max_texts=12,
        max_text_chars=999,
        max_request_chars=5000,
        max_request_tokens=4000,
        max_tokens=128,
        token_budget=2048,
        threads=3,
        backend="bf16",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMBEDDING_MAX_TEXTS": "ten"}, "EMBEDDING_MAX_TEXTS: 'ten' is not an integer"),
        ({"EMBEDDING_TOKEN_BUDGET": "0"}, "EMBEDDING_TOKEN_BUDGET: must be a positive integer"),
        ({"EMBEDDING_THREADS": "-2"}, "EMBEDDING_THREADS: must be a positive integer"),
        (
            {"EMBEDDING_MAX_REQUEST_TOKENS": "1e4"},
            "EMBEDDING_MAX_REQUEST_TOKENS: '1e4' is not an integer",
        ),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        HandlerConfig.from_env(env)


def test_default_threads_share_the_cores_between_mms_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inference, "available_cores", lambda: 8)
    assert inference.default_threads({"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) == 8
    assert inference.default_threads({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) == 4
    assert inference.default_threads({"SAGEMAKER_MODEL_SERVER_WORKERS": "16"}) == 1
    # MMS starts one worker per core when the variable is unset.
    assert inference.default_threads({}) == 1
    assert HandlerConfig.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}).threads == 4


@pytest.mark.parametrize(("which", "window"), [("model_path", 512), ("minilm_path", 256)])
def test_max_tokens_override_is_capped_by_position_embeddings(
    request: pytest.FixtureRequest, which: str, window: int
) -> None:
    """E5's window is its position limit; MiniLM's sentence-transformers window is shorter."""
    from transformers import AutoConfig, AutoTokenizer

    path = request.getfixturevalue(which)
    tokenizer, config = AutoTokenizer.from_pretrained(path), AutoConfig.from_pretrained(path)
    resolve = inference.resolve_max_tokens
    assert resolve(path, tokenizer, config, None) == window
    assert resolve(path, tokenizer, config, 128) == 128
    assert resolve(path, tokenizer, config, 100_000) == 512


# --------------------------------------------------------------------------- packaging rules


def test_handler_signatures_fit_the_toolkit() -> None:
    """The toolkit counts parameters to decide whether to pass its context."""
    from sagemaker_huggingface_inference_toolkit.handler_service import (
        HuggingFaceHandlerService as Service,
    )

    service = Service()
    pairs = [(Service.load, inference.model_fn), (Service.transform_fn, inference.transform_fn)]
    for default, ours in pairs:
        assert service.function_extra_arg(default, ours) == [], ours.__name__
    # The toolkit refuses transform_fn beside any of these three.
    for name in ("input_fn", "predict_fn", "output_fn"):
        assert not hasattr(inference, name), name


def test_runtime_code_imports_only_what_the_dlc_has() -> None:
    tree = ast.parse(inspect.getsource(inference))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    third_party = roots - {
        "__future__",
        "json",
        "logging",
        "os",
        "sys",
        "collections",
        "dataclasses",
        "pathlib",
        "typing",
    }
    # fast_path is model/fast_path.py, shipped beside it as code/fast_path.py.
    assert third_party == {"torch", "transformers", "fast_path"}


def test_fast_path_imports_only_torch_at_module_level() -> None:
    """onnxruntime is imported only when an ONNX backend is chosen (not in the DLC)."""
    from model import fast_path

    roots = set()
    for node in ast.parse(inspect.getsource(fast_path)).body:
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    stdlib = {"__future__", "logging", "tempfile", "time", "collections", "pathlib", "typing"}
    assert roots - stdlib == {"torch"}


def test_requirements_do_not_fight_the_dlc() -> None:
    lines = (ROOT / "model" / "requirements.txt").read_text().splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    names = {re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower() for req in requirements}
    assert not names & {"torch", "transformers", "tokenizers", "sentence-transformers", "numpy"}
