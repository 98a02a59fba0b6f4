"""An emulated domain with the E5 model deployed and the search-client role the check runs as."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))

# The check signs as the search-client role; its permissions are the ones the
# ML setup custom resource really grants (tests may import lambdas/).
from ml_health import handler as health
from ml_setup.access_mapping import CLIENT_CLUSTER_ACTIONS, CLIENT_INDEX_ACTIONS

from tests.ml_setup.http import signed_request
from tests.support.domain_fixtures import (
    ACCOUNT,
    CLIENT,
    CONNECTOR_ROLE,
    MASTER,
    REGION,
    e5_model_config,
)
from tests.support.opensearch_emulator import OpenSearchEmulator, Outcome, Principal, Request

UNMAPPED = Principal(f"arn:aws:iam::{ACCOUNT}:role/unmapped", "FAKEKEYUNMAPPED00000001", "u")
CLIENT_ROLE = "e5search-dev-search-client"


class SlowPredictDomain(OpenSearchEmulator):
    """The shared emulator, with ``_predict`` optionally answering after ``predict_delay`` s."""

    predict_delay = 0.0

    def _model_predict(self, r: Request, mid: str) -> Outcome:
        if self.predict_delay:
            time.sleep(self.predict_delay)
        return super()._model_predict(r, mid)


@dataclass
class Deployed:
    domain: SlowPredictDomain
    model_id: str

    def master(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return signed_request(self.domain, MASTER, method, path, body)

    def check_as(self, who: Principal = CLIENT, timeout: float = 5.0) -> health.Domain:
        creds = ReadOnlyCredentials(who.access_key, who.secret_key, who.session_token)
        return health.Domain(self.domain.endpoint, REGION, creds, timeout_seconds=timeout)


def _ok(reply: tuple[int, Any], what: str) -> Any:
    status, body = reply
    assert 200 <= status < 300, f"{what}: {status} {body}"
    return body


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    domain = SlowPredictDomain(
        master=MASTER, principals=[CLIENT, UNMAPPED], region=REGION,
        access_policy=[MASTER.arn, CLIENT.arn, UNMAPPED.arn],
        pass_role={MASTER.arn: {CONNECTOR_ROLE}},
    )  # fmt: skip
    with domain:
        d = Deployed(domain, "")
        connector = _ok(d.master("POST", "/_plugins/_ml/connectors/_create", {
            "name": "e5", "description": "SageMaker E5", "version": 1, "protocol": "aws_sigv4",
            "parameters": {"region": REGION, "service_name": "sagemaker"},
            "credential": {"roleArn": CONNECTOR_ROLE},
            "actions": [{
                "action_type": "predict", "method": "POST",
                "url": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e5/invocations",
                "headers": {"content-type": "application/json"},
                "request_body": '{ "texts": ${parameters.texts}, '
                                '"content_type": "${parameters.content_type}" }',
            }],
        }), "connector")["connector_id"]  # fmt: skip
        d.model_id = _ok(d.master("POST", "/_plugins/_ml/models/_register", {
            "name": "e5", "function_name": "remote", "connector_id": connector,
            "model_config": e5_model_config(),
        }), "register")["model_id"]  # fmt: skip
        _ok(d.master("POST", f"/_plugins/_ml/models/{d.model_id}/_deploy"), "deploy")
        for _ in range(domain.deploy_polls):
            state = _ok(d.master("GET", f"/_plugins/_ml/models/{d.model_id}"), "get")
        assert state["model_state"] == "DEPLOYED"
        security = "/_plugins/_security/api"
        _ok(d.master("PUT", f"{security}/roles/{CLIENT_ROLE}", {
            "cluster_permissions": list(CLIENT_CLUSTER_ACTIONS),
            "index_permissions": [{"index_patterns": ["documents-*", "documents"],
                                   "allowed_actions": list(CLIENT_INDEX_ACTIONS)}],
        }), "client role")  # fmt: skip
        _ok(d.master("PUT", f"{security}/rolesmapping/{CLIENT_ROLE}",
                     {"backend_roles": [CLIENT.arn]}), "client mapping")  # fmt: skip
        yield d
        assert not domain.violations, domain.violations
