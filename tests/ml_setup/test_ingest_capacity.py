"""Capacity-aware settings on the emulated domain (stacks/ingest_capacity.py).

* ``index.neural_search.semantic_ingest_batch_size`` is created with the index and,
  being a dynamic setting, changed in place: same index, same documents, no copy.
* The emulator checks that setting and the connector's ``client_config`` as the
  servers do (sources in tests/support/opensearch_emulator.py, issue 12 capacity section).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.ml_setup.conftest import CLIENT, SETUP, Stack
from tests.ml_setup.http import signed_request
from tests.ml_setup.test_lifecycle import INDEX, created
from tests.support.domain_fixtures import CONNECTOR_ROLE
from tests.support.opensearch_emulator import OpenSearchEmulator, Principal

SETTING = "index.neural_search.semantic_ingest_batch_size"
_POOL = urllib3.PoolManager()


def bulk(emulator: OpenSearchEmulator, principal: Principal, index: str, docs: int) -> dict:
    """One ``_bulk`` of ``docs`` index actions into the semantic field, signed."""
    lines = []
    for i in range(docs):
        lines.append(json.dumps({"index": {"_id": f"b{i}"}}))
        lines.append(json.dumps({"passage_text": f"bulk passage {i}"}))
    data = ("\n".join(lines) + "\n").encode()
    url = f"{emulator.endpoint}/{index}/_bulk"
    headers = {"Content-Type": "application/x-ndjson"}
    request = AWSRequest(method="POST", url=url, data=data, headers=headers)
    SigV4Auth(principal.credentials, "es", emulator.region).add_auth(request)
    response = _POOL.request("POST", url, body=data, headers=dict(request.headers.items()))
    assert response.status == 200, response.data
    answer = json.loads(response.data)
    assert not answer["errors"], answer
    return answer


def test_the_index_is_created_with_the_stacks_batch_size(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    index = emulator.indices[stack.physical[INDEX]]
    assert index.settings[SETTING] == "12"  # dev's figure (conftest, test_stack)
    before = emulator.bulk_predict_calls
    bulk(emulator, CLIENT, "documents", 30)
    assert emulator.bulk_predict_calls - before == 3  # ceil(30 / 12)


def test_a_new_batch_size_is_applied_in_place_without_a_copy(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    name = stack.physical[INDEX]
    for i in range(30):
        status, _ = signed_request(
            emulator, CLIENT, "PUT", f"/documents/_doc/{i}", {"passage_text": f"text {i}"}
        )
        assert status == 201
    documents = json.loads(json.dumps(emulator.indices[name].docs))
    calls_before = len(emulator.calls())
    stack.props[INDEX]["SemanticIngestBatchSize"] = 20
    results = stack.update()
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    assert stack.physical[INDEX] == name  # same index: no replacement
    assert [i for i in emulator.indices if i.startswith("documents-")] == [name]
    calls = emulator.calls()[calls_before:]
    assert not [c for c in calls if c[2] in ("/_reindex", f"/{name}") and c[1] != "GET"]
    assert [c[1:] for c in calls if c[2] == f"/{name}/_settings"] == [
        ("PUT", f"/{name}/_settings", 200)
    ]
    assert emulator.indices[name].settings[SETTING] == "20"
    assert emulator.indices[name].docs == documents  # vectors untouched
    before = emulator.bulk_predict_calls
    bulk(emulator, CLIENT, "documents", 30)
    assert emulator.bulk_predict_calls - before == 2  # ceil(30 / 20): the new size applies


def test_an_unchanged_batch_size_sends_no_settings_update(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    name = stack.physical[INDEX]
    calls_before = len(emulator.calls())
    stack.props[INDEX]["NumberOfReplicas"] = 0  # same value: an Update with nothing to do
    stack.props[INDEX]["Description"] = "touched"
    results = stack.update()
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    calls = emulator.calls()[calls_before:]
    assert not [c for c in calls if c[2] == f"/{name}/_settings"]


def test_a_template_without_the_property_leaves_the_index_setting_alone(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """Stacks from before the property: the index keeps neural-search's default (unset)."""
    del stack.props[INDEX]["SemanticIngestBatchSize"]
    created(stack)
    name = stack.physical[INDEX]
    assert SETTING not in emulator.indices[name].settings
    stack.props[INDEX]["SemanticIngestBatchSize"] = 12  # the next deploy adds it in place
    results = stack.update()
    assert results[INDEX].status == "SUCCESS", results[INDEX].reason
    assert stack.physical[INDEX] == name
    assert emulator.indices[name].settings[SETTING] == "12"


# ------------------------------------------------------------------- emulator rules


def _settings_body(value: Any) -> dict:
    return {"index": {"neural_search": {"semantic_ingest_batch_size": value}}}


def _index_body(value: Any) -> dict:
    return {"settings": {"index": {"knn": True, "neural_search": {
        "semantic_ingest_batch_size": value}}}}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "Failed to parse value [0] for setting [" + SETTING + "] must be >= 1"),
        (101, "Failed to parse value [101] for setting [" + SETTING + "] must be <= 100"),
        ("ten", "Failed to parse value [ten] for setting [" + SETTING + "]"),
    ],
)
def test_emulator_refuses_a_batch_size_outside_1_to_100(
    stack: Stack, emulator: OpenSearchEmulator, value: Any, reason: str
) -> None:
    created(stack)  # the setup role may create documents-* indexes
    status, body = signed_request(emulator, SETUP, "PUT", "/documents-probe", _index_body(value))
    assert (status, body["error"]["reason"]) == (400, reason)
    assert "documents-probe" not in emulator.indices
    name = stack.physical[INDEX]
    status, body = signed_request(
        emulator, SETUP, "PUT", f"/{name}/_settings", _settings_body(value)
    )
    assert (status, body["error"]["reason"]) == (400, reason)
    assert emulator.indices[name].settings[SETTING] == "12"


@pytest.mark.parametrize("value", [1, 100, "37"])
def test_emulator_accepts_the_bounds_and_updates_on_an_open_index(
    stack: Stack, emulator: OpenSearchEmulator, value: Any
) -> None:
    created(stack)
    name = stack.physical[INDEX]
    status, body = signed_request(
        emulator, SETUP, "PUT", f"/{name}/_settings", _settings_body(value)
    )
    assert status == 200, body
    assert emulator.indices[name].settings[SETTING] == str(value)


def _connector(client_config: Any) -> dict:
    return {
        "name": "probe", "description": "d", "version": 1, "protocol": "aws_sigv4",
        "parameters": {"region": "us-east-1", "service_name": "sagemaker"},
        "credential": {"roleArn": CONNECTOR_ROLE},
        "actions": [{"action_type": "predict", "method": "POST",
                     "url": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e5/invocations",
                     "headers": {"content-type": "application/json"}, "request_body": "{}"}],
        "client_config": client_config,
    }  # fmt: skip


def test_emulator_stores_client_config_as_ml_commons_parses_it(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """Defaults for what is left out, unknown keys skipped, the policy in lower case."""
    created(stack)
    status, body = signed_request(
        emulator, SETUP, "POST", "/_plugins/_ml/connectors/_create",
        _connector({"max_connection": 9, "retry_backoff_policy": "EXPONENTIAL_FULL_JITTER"}),
    )  # fmt: skip
    assert status == 200, body
    status, got = signed_request(
        emulator, SETUP, "GET", f"/_plugins/_ml/connectors/{body['connector_id']}"
    )
    assert status == 200, got
    assert got["client_config"] == {
        "max_connection": 9, "connection_timeout": 30, "read_timeout": 30,
        "retry_backoff_millis": 200, "retry_timeout_seconds": 30, "max_retry_times": 0,
        "retry_backoff_policy": "exponential_full_jitter", "skip_ssl_verification": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("client_config", "reason"),
    [
        ({"retry_backoff_policy": "linear"}, "Unsupported retry backoff policy"),
        ({"read_timeout": "sixty"}, "Failed to parse [read_timeout]"),
        ({"max_connection": True}, "Failed to parse [max_connection]"),
    ],
)
def test_emulator_refuses_what_client_config_parsing_refuses(
    stack: Stack, emulator: OpenSearchEmulator, client_config: dict, reason: str
) -> None:
    created(stack)
    # The API specification refuses the mistyped ones first; the server's own rule is the point.
    emulator.validator = None
    before = dict(emulator.connectors)
    status, body = signed_request(
        emulator, SETUP, "POST", "/_plugins/_ml/connectors/_create", _connector(client_config)
    )
    assert status == 400 and body["error"]["reason"].startswith(reason), body
    assert emulator.connectors == before
