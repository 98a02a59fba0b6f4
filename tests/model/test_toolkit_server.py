"""Our handler inside the real serving stack: sagemaker-huggingface-inference-toolkit + MMS.

The server is started once per session from the endpoint's own model.tar.gz
layout (``code/`` from ``model/``, plus the real E5's weights) on a free port
of 127.0.0.1, with small limits so the limit tests are cheap, and stopped with
its whole process group at the end. A second, code-only layout (what the
deployed endpoint uses) is started once for the last test with the dev
endpoint's container environment exactly as the stack builds it (HF_MODEL_ID,
HF_MODEL_REVISION, HF_TASK, EMBEDDING_*, no worker count: MMS's default of one
worker per vCPU); only the toolkit's two Hub network calls are faked.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from stacks.config import load_config
from stacks.embedding_endpoint import container_environment
from tests.model.helpers import LONG_TEXTS, SHORT_TEXTS, long_text, row_cosines, st_encode
from tools.toolkit_server import ToolkitServer, start_toolkit_server

pytestmark = pytest.mark.integration

MAX_TEXTS = 16
MAX_TEXT_CHARS = 5000
MAX_REQUEST_CHARS = 60_000
MAX_REQUEST_TOKENS = 4096


@dataclass
class Reply:
    """One HTTP exchange."""

    status: int
    body: bytes
    content_type: str | None

    def json(self) -> object:
        return json.loads(self.body)


def call(
    server: ToolkitServer,
    payload: object | bytes,
    *,
    content_type: str | None = "application/json",
    accept: str | None = None,
) -> Reply:
    """POST /invocations and return the reply whatever its status.

    http.client sends only the headers given (urllib would invent a form
    Content-Type), so a request without Content-Type can be tested too.
    """
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=data, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, response.read(), response.getheader("Content-Type"))
    finally:
        connection.close()


def vectors(reply: Reply) -> torch.Tensor:
    """The reply's vectors, after checking it is a 200 with a bare array of arrays."""
    assert reply.status == 200, reply.body[:500]
    decoded = reply.json()
    assert isinstance(decoded, list)
    assert all(isinstance(row, list) and len(row) == 384 for row in decoded)
    return torch.tensor(decoded)


def _start(tmp_path_factory: pytest.TempPathFactory, model_path: Path, **kwargs) -> ToolkitServer:
    return start_toolkit_server(
        tmp_path_factory.mktemp("toolkit"),
        model_path,
        env={
            "EMBEDDING_MAX_TEXTS": str(MAX_TEXTS),
            "EMBEDDING_MAX_TEXT_CHARS": str(MAX_TEXT_CHARS),
            "EMBEDDING_MAX_REQUEST_CHARS": str(MAX_REQUEST_CHARS),
            "EMBEDDING_MAX_REQUEST_TOKENS": str(MAX_REQUEST_TOKENS),
            "EMBEDDING_THREADS": "2",
        },
        workers=1,
        ready_timeout=240,
        **kwargs,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[ToolkitServer]:
    """The toolkit serving weights + code/ from one model directory."""
    running = _start(tmp_path_factory, model_path)
    try:
        yield running
    finally:
        running.stop()


def test_ping_is_healthy(server: ToolkitServer) -> None:
    with urllib.request.urlopen(f"{server.url}/ping", timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "Healthy"}


@pytest.mark.parametrize("content_type", ["query", "passage"])
def test_vectors_match_sentence_transformers(
    server: ToolkitServer, reference: object, content_type: str
) -> None:
    texts = SHORT_TEXTS + LONG_TEXTS
    reply = call(server, {"texts": texts, "content_type": content_type})
    assert reply.content_type is not None and reply.content_type.startswith("application/json")
    got = vectors(reply)
    assert got.shape == (len(texts), 384)
    assert torch.allclose(got.norm(dim=1), torch.ones(len(texts)), atol=1e-5)
    expected = st_encode(reference, [f"{content_type}: {text}" for text in texts])
    cosines = row_cosines(got, expected)
    assert cosines.min().item() >= 0.9999, cosines.tolist()


def test_wrapped_and_uppercase_requests_give_the_same_vectors(server: ToolkitServer) -> None:
    texts = ["how do tides work", LONG_TEXTS[1]]
    plain = vectors(call(server, {"texts": texts, "content_type": "query"}))
    for payload in (
        {"texts": texts, "content_type": "QUERY"},
        {"parameters": {"texts": texts, "content_type": "query"}},
        {"parameters": {"texts": texts, "content_type": "Query"}},
    ):
        assert row_cosines(vectors(call(server, payload)), plain).min().item() >= 0.99999
    as_passage = vectors(call(server, {"texts": texts, "content_type": "PASSAGE"}))
    assert row_cosines(as_passage, plain).max().item() < 0.999  # the prefix differs


def test_batch_invariance_and_order_through_the_server(server: ToolkitServer) -> None:
    short = "capital of France"
    batch = ["passage: " + t for t in LONG_TEXTS] + [long_text(300, seed=s) for s in (1, 2, 3, 4)]
    batch.insert(4, short)  # 10 texts, like one semantic-field ingest request
    beside = vectors(call(server, {"texts": batch, "content_type": "passage"}))
    assert beside.shape == (10, 384)
    alone = vectors(call(server, {"texts": [short], "content_type": "passage"}))
    assert row_cosines(alone, beside[4:5]).item() >= 0.99999
    # Reversing the request reverses the answer: vectors follow input order.
    backwards = vectors(call(server, {"texts": batch[::-1], "content_type": "passage"}))
    assert row_cosines(backwards.flip(0), beside).min().item() >= 0.99999


def test_json_with_charset_and_missing_content_type_are_accepted(server: ToolkitServer) -> None:
    payload = {"texts": ["é à ü"], "content_type": "query"}
    baseline = vectors(call(server, payload))
    for content_type in ("application/json; charset=utf-8", None):
        got = vectors(call(server, payload, content_type=content_type))
        assert row_cosines(got, baseline).item() >= 0.99999


GOOD = {"texts": ["a"], "content_type": "query"}
BAD_REQUESTS = [
    pytest.param(b"{not json", {}, "body: is not valid JSON", id="non-json-body"),
    pytest.param(GOOD, {"content_type": "text/plain"}, "Content-Type: text/plain", id="text/plain"),
    pytest.param(GOOD, {"content_type": "text/csv"}, "Content-Type: text/csv", id="text/csv"),
    pytest.param(GOOD, {"accept": "text/csv"}, "Accept: text/csv", id="accept-csv"),
    pytest.param([["a"]], {}, "body: must be a JSON object", id="body-not-object"),
    pytest.param({"content_type": "query"}, {}, "texts: is missing", id="texts-missing"),
    pytest.param(
        {"texts": "a", "content_type": "query"}, {}, "texts: must be a list", id="texts-string"
    ),
    pytest.param(
        {"texts": [], "content_type": "query"}, {}, "texts: must not be empty", id="texts-empty"
    ),
    pytest.param(
        {"texts": ["a", 7], "content_type": "query"}, {}, "texts[1]: must be a string", id="number"
    ),
    pytest.param(
        {"texts": [None], "content_type": "query"}, {}, "texts[0]: must be a string", id="null"
    ),
    pytest.param({"texts": ["a"]}, {}, "content_type: is missing", id="content-type-missing"),
    pytest.param(
        {"texts": ["a"], "content_type": "document"},
        {},
        'content_type: "document" is not one of query, passage',
        id="content-type-unknown",
    ),
    pytest.param(
        {"parameters": ["a"]}, {}, "parameters: must be a JSON object", id="parameters-not-object"
    ),
    pytest.param(
        {"texts": ["a"] * (MAX_TEXTS + 1), "content_type": "passage"},
        {},
        f"texts: has {MAX_TEXTS + 1} texts; at most {MAX_TEXTS}",
        id="too-many-texts",
    ),
    pytest.param(
        {"texts": ["ok", "x" * (MAX_TEXT_CHARS + 1)], "content_type": "passage"},
        {},
        f"texts[1]: has {MAX_TEXT_CHARS + 1} characters; at most {MAX_TEXT_CHARS}",
        id="text-too-long",
    ),
    pytest.param(
        {"texts": [long_text(700, seed=s) for s in range(9)], "content_type": "passage"},
        {},
        f"texts: has {9 * 512} tokens after truncation to 512 per text; the request budget is "
        f"{MAX_REQUEST_TOKENS}",
        id="over-token-budget",
    ),
    pytest.param(
        {"texts": ["x" * MAX_TEXT_CHARS] * MAX_TEXTS, "content_type": "passage"},
        {},
        f"texts: has {MAX_TEXT_CHARS * MAX_TEXTS} characters in all; the request budget is "
        f"{MAX_REQUEST_CHARS}",
        id="over-char-budget",
    ),
    # The toolkit decodes an application/json body itself before calling us
    # (handler_service.py handle); model/inference.py makes it hand over bytes.
    pytest.param(
        b'{"texts": ["\xff"], "content_type": "query"}',
        {},
        "body: is not valid UTF-8 (invalid start byte at byte 12)",
        id="non-utf8-json",
    ),
    pytest.param(
        b'{"texts": ["\xff"], "content_type": "query"}',
        {"content_type": "application/json; charset=utf-8"},
        "body: is not valid UTF-8 (invalid start byte at byte 12)",
        id="non-utf8-charset",
    ),
    pytest.param(b"[" * 100_000, {}, "body: JSON is nested too deep", id="json-too-deep"),
    pytest.param(
        b'{"texts": ["a"], "content_type": "query", "n": ' + b"9" * 4301 + b"}",
        {},
        "body: has an integer of 4301 digits; at most 4300",
        id="integer-too-long",
    ),
    pytest.param(
        b'{"texts": ["a\\udc00"], "content_type": "query"}',
        {},
        "texts[0]: has a lone surrogate \\udc00 at character 1",
        id="lone-surrogate",
    ),
]


@pytest.mark.parametrize(("payload", "headers", "message"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_field_and_the_server_keeps_serving(
    server: ToolkitServer, payload: object, headers: dict[str, str], message: str
) -> None:
    reply = call(server, payload, **headers)
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])
    error = reply.json()
    assert isinstance(error, dict)
    assert error["code"] == reply.status
    assert error["message"].startswith(message), error
    # The worker survived: the next good request is answered.
    assert vectors(call(server, GOOD)).shape == (1, 384)


def test_limits_are_inclusive(server: ToolkitServer) -> None:
    texts = ["x" * MAX_TEXT_CHARS] + ["y"] * (MAX_TEXTS - 1)
    assert vectors(call(server, {"texts": texts, "content_type": "passage"})).shape == (
        MAX_TEXTS,
        384,
    )


def dev_container_environment() -> dict[str, str]:
    """The dev endpoint's container environment, built by the stack's own function.

    ``stacks/embedding_endpoint.py`` passes ``container_environment(config)``
    unchanged as the SageMaker Model's ``PrimaryContainer.Environment``.
    """
    root = Path(__file__).resolve().parents[2]
    context = json.loads((root / "cdk.json").read_text(encoding="utf-8"))["context"]
    return container_environment(load_config(context, "dev"))


def test_deployed_layout_code_only_archive_with_hf_model_id(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, reference: object
) -> None:
    """Code-only model.tar.gz + the endpoint's env: the toolkit fetches weights, runs our code.

    The two Hub calls are replaced by a listing and a copy of the real E5
    folder (no network); everything else, model-archiver and the toolkit's
    download function included, is what the endpoint does. The toolkit's own
    handler would answer a feature-extraction model with token vectors (a list
    per token), so one 384-float vector per text proves our code/inference.py
    served the request.
    """
    env = dev_container_environment()
    assert env["HF_MODEL_REVISION"] and "SAGEMAKER_MODEL_SERVER_WORKERS" not in env
    hub = start_toolkit_server(
        tmp_path_factory.mktemp("toolkit-hub"),
        model_path,
        hub_layout=True,
        env=env,
        workers=None,
        ready_timeout=300,
    )
    try:
        assert sorted(p.name for p in hub.model_dir.iterdir()) == ["code"]
        calls = [
            json.loads(line) for line in (hub.work_dir / "hub-calls.jsonl").read_text().splitlines()
        ]
        assert [c["call"] for c in calls] == ["model_info", "snapshot_download"]
        assert {c["repo_id"] for c in calls} == {env["HF_MODEL_ID"]}
        assert calls[1]["revision"] == env["HF_MODEL_REVISION"]
        # The toolkit keeps safetensors only when model_info lists them.
        assert "model.safetensors" in calls[1]["files"]
        # The budget the stack set is the one the workers enforce.
        budget = int(env["EMBEDDING_MAX_REQUEST_TOKENS"])
        over = {"texts": [long_text(700, seed=s) for s in range(budget // 512 + 1)]}
        reply = call(hub, {**over, "content_type": "passage"})
        assert reply.status == 400
        assert f"the request budget is {budget} " in reply.json()["message"]
        texts = ["how do tides work", LONG_TEXTS[2]]
        got = vectors(call(hub, {"texts": texts, "content_type": "QUERY"}))
        expected = st_encode(reference, ["query: " + text for text in texts])
        assert row_cosines(got, expected).min().item() >= 0.9999
        reply = call(hub, {"texts": ["a"], "content_type": "neither"})
        assert reply.status == 400 and reply.json()["message"].startswith("content_type:")
        snapshots = list((hub.work_dir / ".sagemaker" / "mms" / "models").iterdir())
        model_id = env["HF_MODEL_ID"].replace("/", "__")
        assert [p.name for p in snapshots] == [f"{model_id}.{env['HF_MODEL_REVISION']}"]
    finally:
        hub.stop()
    assert not hub._group_alive(hub.process.pid)
