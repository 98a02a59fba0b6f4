"""Crafted or stale physical ids never reach a URL (issue 9 item 7), and failure
reasons stay one short line, naming what is missing (item 8)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ml_setup import handler
from ml_setup.opensearch_client import OpenSearchClient

from tests.ml_setup.cfn import FakeClock, FakeLambdaContext, Provider, stringify
from tests.ml_setup.conftest import SETUP, Stack
from tests.ml_setup.test_lifecycle import created
from tests.support.opensearch_emulator import OpenSearchEmulator

CONNECTOR = "Custom::MlConnector"
MODEL = "Custom::MlModel"
INDEX = "Custom::SemanticIndex"
CRAFTED = "../../../documents-0000aaaa"


@pytest.mark.parametrize("resource_type", [CONNECTOR, MODEL])
@pytest.mark.parametrize(
    "physical_id", [CRAFTED, "4f6c1a8e-1d2b-4c3a-9e8f-0a1b2c3d4e5f/x", "..", "a/../../b"]
)
def test_delete_of_an_id_that_is_not_ours_succeeds_without_calls(
    resource_type: str,
    physical_id: str,
    provider: Provider,
    stack: Stack,
    emulator: OpenSearchEmulator,
) -> None:
    created(stack)
    index = stack.data[INDEX]["IndexName"]
    before = len(emulator.calls())
    result = provider.send(
        "Delete", resource_type, stack.applied[resource_type], physical_id=physical_id
    )
    assert result.status == "SUCCESS", result.reason
    assert emulator.calls()[before:] == []
    assert index in emulator.indices


def test_delete_of_cloudformations_request_id_after_a_failed_create_makes_no_call(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    before = len(emulator.calls())
    # A request id is a UUID: it has the id alphabet but names nothing of ours.
    result = provider.send(
        "Delete", MODEL, stack.applied[MODEL], physical_id="4f6c1a8e-1d2b-4c3a-9e8f-0a1b2c3d4e5f"
    )
    assert result.status == "SUCCESS", result.reason
    # Before the fix this looked the model group up by name and tried to delete it.
    assert emulator.calls()[before:] == []
    assert stack.physical[MODEL] in emulator.models


@pytest.mark.parametrize("resource_type", [CONNECTOR, MODEL])
def test_update_with_a_crafted_physical_id_fails_before_any_call(
    resource_type: str, provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    index = stack.data[INDEX]["IndexName"]
    props = dict(stack.applied[resource_type], Description="changed")
    before = len(emulator.calls())
    result = provider.send(
        "Update", resource_type, props, physical_id=CRAFTED, old_props=stack.applied[resource_type]
    )
    assert result.status == "FAILED"
    assert "is not an ML Commons id" in result.reason
    assert emulator.calls()[before:] == []
    assert index in emulator.indices


def test_the_client_never_sends_a_path_with_dot_segments(
    emulator: OpenSearchEmulator, clock: FakeClock
) -> None:
    client = OpenSearchClient(
        emulator.endpoint,
        emulator.region,
        lambda: SETUP.credentials,
        deadline=clock.now() + 60,
        clock=clock,
    )
    for path in (f"/_plugins/_ml/models/{CRAFTED}", "/a/./b", "/.."):
        with pytest.raises(ValueError, match="dot segments"):
            client.request("DELETE", path)
    assert emulator.calls() == []


def _event(request_type: Any, props: Any, **extra: Any) -> dict[str, Any]:
    event = {
        "RequestType": request_type,
        "ResourceType": CONNECTOR,
        "LogicalResourceId": "Connector",
        "RequestId": "r-1",
        "ResourceProperties": props,
        **extra,
    }
    return {k: v for k, v in event.items() if v is not None}


def _reason(event: dict[str, Any], clock: FakeClock) -> str:
    with pytest.raises(Exception) as failure:
        handler.on_event(copy.deepcopy(event), FakeLambdaContext(clock, 300))
    return str(failure.value)


def test_a_huge_bad_property_gives_a_short_one_line_reason(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    props = stack.resolved(CONNECTOR)
    props["EndpointName"] = "x\n" * 500_000  # about 1 MB, what a template can hold
    result = provider.send("Create", CONNECTOR, props)
    assert result.status == "FAILED"
    assert "EndpointName" in result.reason
    assert "\n" not in result.reason
    assert len(result.reason) <= 400
    assert emulator.calls() == []


@pytest.mark.parametrize(
    ("request_type", "missing"),
    [("Delete", "PhysicalResourceId"), ("Update", "PhysicalResourceId"), (None, "RequestType")],
)
def test_a_malformed_event_names_the_missing_key(
    request_type: str | None,
    missing: str,
    stack: Stack,
    emulator: OpenSearchEmulator,
    clock: FakeClock,
    runtime: Any,
) -> None:
    props = stringify(stack.resolved(CONNECTOR))
    reason = _reason(_event(request_type, props, OldResourceProperties=props), clock)
    assert f"malformed event: {missing} is missing" in reason
    assert "internal error" not in reason
    assert len(reason) <= 400


def test_non_object_resource_properties_are_named(
    stack: Stack, emulator: OpenSearchEmulator, clock: FakeClock, runtime: Any
) -> None:
    reason = _reason(_event("Create", ["not", "an", "object"]), clock)
    assert "ResourceProperties is a list; expected an object" in reason
    assert "internal error" not in reason
    assert emulator.calls() == []
