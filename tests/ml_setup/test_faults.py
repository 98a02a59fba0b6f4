"""Faults: each test ends in the CloudFormation status it must, with nothing left behind.

Backoff sleeps run on a fake clock, so "ten minutes of retries" costs
milliseconds; the clock's record of sleeps shows the retries happened.
"""

from __future__ import annotations

from typing import Any

import pytest
from ml_setup import model as model_module
from ml_setup import semantic_index

from tests.ml_setup.cfn import CREATE_FAILED_MARKER, ORDER, FakeClock, Provider
from tests.ml_setup.conftest import MASTER, SETUP, Stack
from tests.ml_setup.test_lifecycle import assert_nothing_of_ours_left, created
from tests.support.opensearch_emulator import OpenSearchEmulator

MODEL = "Custom::MlModel"
CONNECTOR = "Custom::MlConnector"
INDEX = "Custom::SemanticIndex"
MAPPING = "Custom::MlAccessMapping"
SECRETS = ("setup-secret", "master-secret", "setup-session-token", "master-session-token")


def assert_clean_reason(reason: str) -> None:
    """One line for the CloudFormation console: no trace, no secret, no pre-signed URL."""
    assert "Traceback" not in reason and 'File "' not in reason
    assert not any(secret in reason for secret in SECRETS)
    assert "cloudformation-custom-resource-response" not in reason


@pytest.mark.parametrize("status", [401, 403])
def test_permission_propagation_denials_are_retried_until_they_stop(
    status: int, stack: Stack, emulator: OpenSearchEmulator, clock: FakeClock
) -> None:
    emulator.faults.deny(6, status, principal=SETUP.arn)
    emulator.faults.deny(3, status, principal=MASTER.arn)
    created(stack)
    assert emulator.faults.pending() == 0
    assert len(clock.sleeps) >= 9
    denied = [c for c in emulator.calls() if c[3] == status]
    assert len(denied) == 9


def test_throttling_and_unavailability_bursts_are_retried_without_duplicates(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.faults.throttle(4, path_prefix="/_plugins/_ml/connectors/_create")
    emulator.faults.unavailable(3, path_prefix="/_plugins/_ml/models/")
    emulator.faults.throttle(3, path_prefix="/documents-")
    emulator.faults.unavailable(2, path_prefix="/_plugins/_security/")
    created(stack)
    assert emulator.faults.pending() == 0
    assert len(emulator.connectors) == len(emulator.models) == len(emulator.model_groups) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/_plugins/_ml/connectors/_create",
        "/_plugins/_ml/model_groups/_register",
        "/_plugins/_ml/models/_register",
    ],
)
@pytest.mark.parametrize("lost", ["503", "dropped connection"])
def test_a_create_whose_answer_is_lost_does_not_duplicate(
    path: str, lost: str, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    """The POST took effect but its answer was a 5xx or a cut connection."""
    if lost == "503":
        emulator.faults.add(1, 503, {"message": "gateway"}, path_prefix=path, after_processing=True)
    else:
        emulator.faults.add(
            1, 0, None, path_prefix=path, drop_connection=True, after_processing=True
        )
    created(stack)
    assert emulator.faults.pending() == 0
    assert len(emulator.connectors) == len(emulator.models) == len(emulator.model_groups) == 1


def test_a_non_idempotent_create_is_not_blindly_retried_on_503(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.faults.unavailable(1, path_prefix="/_plugins/_ml/connectors/_create")
    created(stack)
    calls = [c[1:] for c in emulator.calls(SETUP.arn) if "/connectors/" in c[2]]
    # create (503) -> look up by name -> create again
    assert calls[:4] == [
        ("POST", "/_plugins/_ml/connectors/_search", 200),
        ("POST", "/_plugins/_ml/connectors/_create", 503),
        ("POST", "/_plugins/_ml/connectors/_search", 200),
        ("POST", "/_plugins/_ml/connectors/_create", 200),
    ]


def test_a_model_that_fails_to_deploy_fails_with_the_reason_and_leaves_nothing(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.faults.fail_next_deploy(
        "Could not reach https://runtime.sagemaker.us-east-1.amazonaws.com: endpoint not found"
    )
    results = stack.create()
    assert results[MODEL].status == "FAILED"
    assert "failed to deploy" in results[MODEL].reason
    assert "endpoint not found" in results[MODEL].reason
    assert_clean_reason(results[MODEL].reason)
    assert INDEX not in results
    assert emulator.models == {} and emulator.model_groups == {}
    # CloudFormation's rollback deletes what was created, including the failed model's id.
    rollback = stack.provider.send(
        "Delete", MODEL, stack.resolved(MODEL), physical_id=results[MODEL].physical_id
    )
    assert rollback.status == "SUCCESS", rollback.reason
    assert [r.status for r in stack.delete().values()] == ["SUCCESS"] * 2
    assert_nothing_of_ours_left(emulator)


def test_a_deployment_that_never_finishes_times_out_and_cleans_up(
    stack: Stack, emulator: OpenSearchEmulator, clock: FakeClock
) -> None:
    emulator.faults.stall_deploys = True
    started = clock.now()
    results = stack.create()
    assert results[MODEL].status == "FAILED"
    assert "not deployed in time" in results[MODEL].reason
    assert "DEPLOYING" in results[MODEL].reason
    assert_clean_reason(results[MODEL].reason)
    # The handler's own deadline (600 s here) fires before the framework's 45 minutes.
    assert 600 <= clock.now() - started < 45 * 60
    assert emulator.models == {} and emulator.model_groups == {}
    assert [r.status for r in stack.delete().values()] == ["SUCCESS"] * 2
    assert_nothing_of_ours_left(emulator)


def test_a_domain_that_does_not_answer_fails_create_within_the_lambda_timeout(
    stack: Stack, emulator: OpenSearchEmulator, clock: FakeClock
) -> None:
    emulator.faults.down = True
    started = clock.now()
    results = stack.create()
    result = results[MAPPING]
    assert result.status == "FAILED"
    assert result.physical_id == CREATE_FAILED_MARKER
    assert "did not answer in time" in result.reason or "503" in result.reason
    assert_clean_reason(result.reason)
    assert clock.now() - started <= stack.provider.on_event_timeout
    emulator.faults.down = False
    # The rollback's Delete of a failed create never reaches the handler.
    assert (
        stack.provider.send(
            "Delete", MAPPING, stack.resolved(MAPPING), physical_id=result.physical_id
        ).status
        == "SUCCESS"
    )
    assert_nothing_of_ours_left(emulator)


def test_a_slow_domain_is_waited_for(stack: Stack, emulator: OpenSearchEmulator) -> None:
    emulator.faults.unavailable(12)
    emulator.faults.drop_connections(3)
    created(stack)
    assert emulator.faults.pending() == 0


class LambdaDied(BaseException):
    """The Lambda process ends mid-call (timeout, OOM): no cleanup code runs."""


def test_a_model_create_that_died_halfway_is_retried_without_duplicates(
    stack: Stack, emulator: OpenSearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = model_module._start_deploy
    monkeypatch.setattr(
        model_module, "_start_deploy", lambda *a: (_ for _ in ()).throw(LambdaDied())
    )
    with pytest.raises(LambdaDied):
        stack.create()
    assert len(emulator.models) == 1 and len(emulator.model_groups) == 1
    monkeypatch.setattr(model_module, "_start_deploy", original)
    # CloudFormation reported the failure and rolled back; the user deploys again.
    stack.physical.pop(MODEL, None)
    result = stack.provider.send("Create", MODEL, stack.resolved(MODEL))
    assert result.status == "SUCCESS", result.reason
    assert set(emulator.models) == {result.physical_id}
    assert len(emulator.model_groups) == 1
    assert emulator.models[result.physical_id]["model_state"] == "DEPLOYED"


def test_an_index_create_that_died_halfway_is_retried_and_adopts_the_index(
    stack: Stack, emulator: OpenSearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = semantic_index._create_index

    def create_then_die(*args: Any) -> bool:
        original(*args)
        raise LambdaDied()

    monkeypatch.setattr(semantic_index, "_create_index", create_then_die)
    with pytest.raises(LambdaDied):
        stack.create()
    monkeypatch.setattr(semantic_index, "_create_index", original)
    (index,) = [i for i in emulator.indices if i.startswith("documents-")]
    result = stack.provider.send("Create", INDEX, stack.resolved(INDEX))
    assert result.status == "SUCCESS", result.reason
    assert result.physical_id == index
    assert [i for i in emulator.indices if i.startswith("documents-")] == [index]


def test_a_connector_create_retried_after_a_lost_answer_reuses_it(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    created(stack)
    again = stack.provider.send("Create", CONNECTOR, stack.resolved(CONNECTOR))
    assert again.status == "SUCCESS", again.reason
    assert again.physical_id == stack.physical[CONNECTOR]
    assert len(emulator.connectors) == 1
    # The connector's model was undeployed, the connector refreshed, the model redeployed.
    assert emulator.models[stack.physical[MODEL]]["model_state"] == "DEPLOYED"


def test_a_refused_pass_role_fails_with_the_services_reason(
    stack: Stack, emulator: OpenSearchEmulator
) -> None:
    emulator.pass_role.clear()
    results = stack.create()
    reason = results[CONNECTOR].reason
    assert results[CONNECTOR].status == "FAILED"
    assert reason.startswith(
        "Custom::MlConnector Create failed: POST /_plugins/_ml/connectors/_create"
    )
    assert "HTTP 403 security_exception" in reason and "iam:PassRole" in reason
    assert_clean_reason(reason)


def test_without_the_access_mapping_the_setup_role_is_refused_and_create_fails(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator, clock: FakeClock
) -> None:
    props = stack.resolved(CONNECTOR)
    started = clock.now()
    result = provider.send("Create", CONNECTOR, props)
    assert result.status == "FAILED"
    assert "security_exception" in result.reason and "no permissions" in result.reason
    # A missing permission is not a propagation delay: it fails after the short
    # bound (60 s plus one backoff step), not at the end of the Lambda's 5 minutes.
    assert clock.now() - started <= 90
    assert "missing permission [cluster:monitor/health]" in result.reason
    assert emulator.connectors == {}


def test_malformed_properties_fail_before_any_call_with_the_property_named(
    provider: Provider, stack: Stack, emulator: OpenSearchEmulator
) -> None:
    props = stack.resolved(MAPPING)
    props["IndexPatterns"] = ["*"]
    result = provider.send("Create", MAPPING, props)
    assert result.status == "FAILED"
    assert "IndexPatterns" in result.reason
    assert emulator.calls() == []


def test_resources_are_created_in_the_dependency_order() -> None:
    assert ORDER == (MAPPING, CONNECTOR, MODEL, INDEX)
