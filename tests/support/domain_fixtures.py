"""Test data that several suites need to describe one domain set up by our stacks.

The asymmetric model configuration is spelled out here from DESIGN.md, not
taken from the production code, so tests that compare against it check the
code rather than repeat it.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.support.opensearch_emulator import Principal

ACCOUNT = "111122223333"
REGION = "us-east-1"

# Key ids are fake and deliberately unlike AWS's (no AKIA/ASIA prefix), so secret
# scanners stay quiet; the emulator maps each to its role ARN.
SETUP = Principal(
    f"arn:aws:iam::{ACCOUNT}:role/e5search-dev-search-SetupRole1234",
    "FAKEKEYSETUPROLE0000001",
    "setup-secret",
    "setup-session-token",
)
MASTER = Principal(
    f"arn:aws:iam::{ACCOUNT}:role/e5search-dev-search-MasterRole1234",
    "FAKETMPMASTERROLE000001",
    "master-secret",
    "master-session-token",
)
CLIENT = Principal(
    f"arn:aws:iam::{ACCOUNT}:role/e5search-dev-search-ClientRole1234",
    "FAKETMPCLIENTROLE000001",
    "client-secret",
    "client-session-token",
)
CONNECTOR_ROLE = f"arn:aws:iam::{ACCOUNT}:role/e5search-dev-search-ConnectorRole1234"

_E5_MODEL_CONFIG: dict[str, Any] = {
    "model_type": "TEXT_EMBEDDING",
    "embedding_dimension": 384,
    "framework_type": "SENTENCE_TRANSFORMERS",
    "additional_config": {
        "space_type": "cosinesimil",
        "is_asymmetric": True,
        "model_family": "e5",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
    },
}


def e5_model_config() -> dict[str, Any]:
    """DESIGN.md's asymmetric ``model_config`` for multilingual-e5-small (a fresh copy)."""
    return copy.deepcopy(_E5_MODEL_CONFIG)
