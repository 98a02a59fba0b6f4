"""An emulated domain set up the way the ML setup stack leaves a real one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

# The search-client role's permissions come from the custom resource that
# creates it on a real domain, so the smoke test is checked against the role
# it will really run as (tests may import lambdas/; tools/ never do).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))
from ml_setup import search_pipeline
from ml_setup.access_mapping import CLIENT_CLUSTER_ACTIONS, CLIENT_INDEX_ACTIONS
from ml_setup.properties import Props

from tests.support.domain_fixtures import (
    ACCOUNT,
    CLIENT,
    CONNECTOR_ROLE,
    MASTER,
    REGION,
    e5_model_config,
)
from tests.support.opensearch_emulator import Principal
from tests.tools.emulated_domain import SmokeTestDomain
from tools.opensearch import SignedHttpClient

CLIENT_ROLE = "e5search-dev-search-client"
SMOKE_ONLY = Principal(f"arn:aws:iam::{ACCOUNT}:role/not-mapped", "FAKEKEYNOTMAPPED0000001", "x")
INDEX = "documents"  # the alias clients use (stack output IndexAlias)
CONCRETE_INDEX = "documents-0a1b2c3d"  # what it points at (stack output IndexName)
FIELD = "passage_text"
PIPELINE = "documents-hybrid"  # stack output HybridSearchPipelineName
DISTRACTORS = {
    "faq-1": "Our support desk is open on weekdays from nine to five.",
    "faq-2": "Invoices are sent by email at the start of each month.",
    "faq-3": "The river ferry crosses to the island every forty minutes in summer.",
}


@dataclass
class Deployed:
    domain: SmokeTestDomain
    model_id: str
    master: SignedHttpClient


def client_for(domain: SmokeTestDomain, who: Principal) -> SignedHttpClient:
    creds = ReadOnlyCredentials(who.access_key, who.secret_key, who.session_token)
    return SignedHttpClient(domain.endpoint, REGION, lambda: creds, timeout=10)


def _ok(reply, what: str):  # type: ignore[no-untyped-def]
    assert reply.ok, f"{what}: {reply.status} {reply.body}"
    return reply.body


@pytest.fixture
def index_chunking() -> bool | list[dict[str, Any]]:
    """The semantic field's ``chunking`` (test_smoke_chunked.py overrides it)."""
    return False


@pytest.fixture
def default_pipeline() -> bool:
    """Whether the index names the pipeline as its default (test_smoke_chunked.py: yes)."""
    return False


@pytest.fixture
def deployed(
    index_chunking: bool | list[dict[str, Any]], default_pipeline: bool
) -> Iterator[Deployed]:
    """Connector, asymmetric model (DEPLOYED) and semantic index, with a few other documents."""
    domain = SmokeTestDomain(
        master=MASTER, principals=[CLIENT, SMOKE_ONLY], region=REGION,
        pass_role={MASTER.arn: {CONNECTOR_ROLE}},
    )  # fmt: skip
    with domain:
        master = client_for(domain, MASTER)
        connector = _ok(master.request("POST", "/_plugins/_ml/connectors/_create", {
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
        model_id = _ok(master.request("POST", "/_plugins/_ml/models/_register", {
            "name": "e5", "function_name": "remote", "connector_id": connector,
            "model_config": e5_model_config(),
        }), "register")["model_id"]  # fmt: skip
        _ok(master.request("POST", f"/_plugins/_ml/models/{model_id}/_deploy"), "deploy")
        for _ in range(domain.deploy_polls):
            state = _ok(master.request("GET", f"/_plugins/_ml/models/{model_id}"), "get")
        assert state["model_state"] == "DEPLOYED"
        semantic: dict[str, Any] = {"type": "semantic", "model_id": model_id}
        if index_chunking:
            semantic["chunking"] = index_chunking
        settings: dict[str, Any] = {"knn": True}
        if default_pipeline:  # as Custom::SemanticIndex sets it (named before it exists)
            settings["search"] = {"default_pipeline": PIPELINE}
        _ok(master.request("PUT", f"/{CONCRETE_INDEX}", {
            "settings": {"index": settings},
            "mappings": {"properties": {FIELD: semantic}},
            "aliases": {INDEX: {}},
        }), "index")  # fmt: skip
        # The search-client role and its mapping, as Custom::MlAccessMapping writes them.
        security = "/_plugins/_security/api"
        _ok(master.request("PUT", f"{security}/roles/{CLIENT_ROLE}", {
            "cluster_permissions": list(CLIENT_CLUSTER_ACTIONS),
            "index_permissions": [{"index_patterns": [f"{INDEX}-*", INDEX],
                                   "allowed_actions": list(CLIENT_INDEX_ACTIONS)}],
        }), "client role")  # fmt: skip
        _ok(master.request("PUT", f"{security}/rolesmapping/{CLIENT_ROLE}",
                           {"backend_roles": [CLIENT.arn]}), "client mapping")  # fmt: skip
        # The hybrid search pipeline exactly as Custom::HybridSearchPipeline writes it.
        spec = search_pipeline.Spec.parse(Props({
            "Name": PIPELINE, "Normalization": "min_max", "Combination": "arithmetic_mean",
            "Weights": ["0.3", "0.7"],
        }, search_pipeline.RESOURCE_TYPE))  # fmt: skip
        _ok(master.request("PUT", f"/_search/pipeline/{PIPELINE}", spec.body()), "pipeline")
        for doc_id, text in DISTRACTORS.items():
            _ok(master.request("PUT", f"/{INDEX}/_doc/{doc_id}", {FIELD: text}), doc_id)
        yield Deployed(domain, model_id, master)
        assert not domain.violations, domain.violations
