"""In-process tests of model/inference.py: contract, exactness, limits, configuration."""

from __future__ import annotations

import ast
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
    input_fn,
    output_fn,
    parse_request,
    plan_batches,
    predict_fn,
)
from tests.model.helpers import LONG_TEXTS, SHORT_TEXTS, long_text, row_cosines, st_encode

ROOT = Path(__file__).resolve().parents[2]


def embed_request(loaded: inference.EmbeddingModel, body: object) -> list[list[float]]:
    """Run one request through input_fn -> predict_fn -> output_fn like the toolkit does."""
    request = input_fn(json.dumps(body), "application/json")
    return json.loads(output_fn(predict_fn(request, loaded), "application/json"))


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


def test_input_fn_decodes_bytes_and_charset_content_types() -> None:
    body = json.dumps({"texts": ["é"], "content_type": "query"}).encode()
    for content_type in ("application/json", "application/json; charset=utf-8", None):
        assert input_fn(body, content_type).texts == ["é"]
    assert input_fn(bytearray(body), "Application/JSON").content_type == "query"


@pytest.mark.parametrize(
    ("data", "content_type", "field", "problem"),
    [
        (b'{"texts": ["a"], "content_type": "query"}', "text/plain", "Content-Type", "text/plain"),
        (b"a,b", "text/csv", "Content-Type", "send application/json"),
        (b"not json", "application/json", "body", "not valid JSON"),
        (b'{"texts": ["a"]', "application/json", "body", "not valid JSON"),
        (b"\xff\xfe", "application/json", "body", "not valid UTF-8"),
    ],
)
def test_input_fn_rejects_bad_bodies(
    data: bytes, content_type: str, field: str, problem: str
) -> None:
    with pytest.raises(RequestError) as caught:
        input_fn(data, content_type)
    assert caught.value.field == field
    assert problem in str(caught.value)


def test_output_fn_is_a_bare_json_array_and_honours_accept() -> None:
    vectors = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    for accept in (None, "*/*", "application/json", "application/json; charset=utf-8"):
        decoded = json.loads(output_fn(vectors, accept))
        assert torch.allclose(torch.tensor(decoded), vectors)
    with pytest.raises(RequestError, match=r"^Accept: text/csv is not supported"):
        output_fn(vectors, "text/csv")


def test_response_has_one_unit_vector_per_text_in_input_order(
    loaded: inference.EmbeddingModel,
) -> None:
    texts = [LONG_TEXTS[3], "b", LONG_TEXTS[0], "a longer query about tides", ""]
    vectors = embed_request(loaded, {"texts": texts, "content_type": "passage"})
    assert len(vectors) == len(texts)
    tensor = torch.tensor(vectors)
    assert tensor.shape == (len(texts), 384)
    assert torch.allclose(tensor.norm(dim=1), torch.ones(len(texts)), atol=1e-5)
    # Order: each row equals that text embedded alone.
    for index, text in enumerate(texts):
        alone = torch.tensor(embed_request(loaded, {"texts": [text], "content_type": "passage"}))
        assert row_cosines(alone, tensor[index : index + 1]).item() >= 0.99999, index


# --------------------------------------------------------------------------- exactness


def test_prefix_follows_content_type_and_matches_sentence_transformers(
    loaded: inference.EmbeddingModel, reference: object
) -> None:
    texts = SHORT_TEXTS + LONG_TEXTS
    for content_type, prefix in (("query", "query: "), ("passage", "passage: ")):
        ours = torch.tensor(embed_request(loaded, {"texts": texts, "content_type": content_type}))
        expected = st_encode(reference, [prefix + text for text in texts])
        cosines = row_cosines(ours, expected)
        assert cosines.min().item() >= 0.9999, (content_type, cosines.tolist())
    # And the two prefixes really give different vectors.
    as_query = torch.tensor(embed_request(loaded, {"texts": texts, "content_type": "query"}))
    as_passage = torch.tensor(embed_request(loaded, {"texts": texts, "content_type": "passage"}))
    assert row_cosines(as_query, as_passage).max().item() < 0.999


def test_texts_beyond_the_window_are_truncated_like_sentence_transformers(
    loaded: inference.EmbeddingModel, reference: object
) -> None:
    assert loaded.max_tokens == 256  # sentence_bert_config.json of the bundled model
    huge = long_text(3000, seed=5)
    assert len(loaded.tokenizer(huge)["input_ids"]) > 4 * loaded.max_tokens
    ours = torch.tensor(embed_request(loaded, {"texts": [huge], "content_type": "passage"}))
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
        predict_fn(EmbeddingRequest(["a"] * 4, "query"), capped)
    with pytest.raises(
        RequestError, match=r"^texts\[1\]: has 11 characters; at most 10 .*EMBEDDING_MAX_TEXT_CHARS"
    ):
        predict_fn(EmbeddingRequest(["a", "b" * 11], "query"), capped)
    assert predict_fn(EmbeddingRequest(["a"] * 3, "query"), capped).shape == (3, 384)
    assert predict_fn(EmbeddingRequest(["b" * 10], "query"), capped).shape == (1, 384)


def test_configured_prefixes_are_used(loaded: inference.EmbeddingModel, model_path: Path) -> None:
    custom = inference.load_model(
        model_path, HandlerConfig(threads=1, query_prefix="", passage_prefix="Represent: ")
    )
    text = "tidal energy"
    got_query = predict_fn(EmbeddingRequest([text], "query"), custom)
    got_passage = predict_fn(EmbeddingRequest([text], "passage"), custom)
    assert row_cosines(got_query, inference.embed(loaded, [text])).item() >= 0.99999
    expected_passage = inference.embed(loaded, ["Represent: " + text])
    assert row_cosines(got_passage, expected_passage).item() >= 0.99999


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_int8_switch_quantizes_and_stays_normalised(model_path: Path) -> None:
    int8 = inference.load_model(model_path, HandlerConfig(threads=1, int8=True))
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    modules = list(int8.model.modules())
    assert sum(isinstance(m, dynamic_linear) for m in modules) >= 6 * 6  # 6 per BERT layer
    assert not any(type(m) is torch.nn.Linear for m in modules)
    vectors = inference.embed(int8, ["query: hello", "passage: " + LONG_TEXTS[1]])
    assert torch.allclose(vectors.norm(dim=1), torch.ones(2), atol=1e-5)


# --------------------------------------------------------------------------- configuration


def test_config_defaults_are_e5s() -> None:
    cfg = HandlerConfig.from_env({})
    assert (cfg.query_prefix, cfg.passage_prefix) == ("query: ", "passage: ")
    assert cfg.int8 is False
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
            "EMBEDDING_THREADS": "3",
            "EMBEDDING_INT8": "true",
        }
    )
    assert cfg == HandlerConfig("", "doc: ", 12, 999, 128, 2048, 3, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMBEDDING_MAX_TEXTS": "ten"}, "EMBEDDING_MAX_TEXTS: 'ten' is not an integer"),
        ({"EMBEDDING_TOKEN_BUDGET": "0"}, "EMBEDDING_TOKEN_BUDGET: must be a positive integer"),
        ({"EMBEDDING_THREADS": "-2"}, "EMBEDDING_THREADS: must be a positive integer"),
        ({"EMBEDDING_INT8": "maybe"}, "EMBEDDING_INT8: 'maybe' is not a boolean"),
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


def test_max_tokens_override_is_capped_by_position_embeddings(
    loaded: inference.EmbeddingModel, model_path: Path
) -> None:
    resolve = inference.resolve_max_tokens
    config = loaded.model.config
    assert resolve(model_path, loaded.tokenizer, config, None) == 256
    assert resolve(model_path, loaded.tokenizer, config, 128) == 128
    assert resolve(model_path, loaded.tokenizer, config, 100_000) == 512


# --------------------------------------------------------------------------- packaging rules


def test_handler_signatures_fit_the_toolkit() -> None:
    """The toolkit counts parameters to decide whether to pass its context."""
    from sagemaker_huggingface_inference_toolkit.handler_service import (
        HuggingFaceHandlerService as Service,
    )

    service = Service()
    pairs = [
        (Service.load, inference.model_fn),
        (Service.preprocess, inference.input_fn),
        (Service.predict, inference.predict_fn),
        (Service.postprocess, inference.output_fn),
    ]
    for default, ours in pairs:
        assert service.function_extra_arg(default, ours) == [], ours.__name__
    assert not hasattr(inference, "transform_fn")  # would conflict with the four above


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
