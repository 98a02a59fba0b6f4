"""A stand-in for CloudFormation and the CDK Provider framework, for lifecycle tests.

It drives the real ``on_event`` / ``is_complete`` with CloudFormation-shaped
events and applies the framework's rules (aws-cdk-lib 2.275.0,
custom-resources/lib/provider-framework/runtime): ``is_complete`` is polled
every query interval until it answers true or the total timeout passes; a
Create whose ``on_event`` fails reports the CREATE_FAILED marker as physical
id, and the Delete that follows is answered SUCCESS without calling the user
handler; ``Data`` from ``on_event`` and ``is_complete`` are merged.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from ml_setup import handler

CREATE_FAILED_MARKER = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
ORDER = (
    "Custom::MlAccessMapping",
    "Custom::MlConnector",
    "Custom::MlModel",
    "Custom::SemanticIndex",
)


class FakeClock:
    """Time that moves only when someone sleeps: backoff costs no real time."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.t += seconds


class FakeLambdaContext:
    """``get_remaining_time_in_millis`` against the fake clock, like the Lambda's timeout."""

    def __init__(self, clock: FakeClock, timeout_seconds: float) -> None:
        self.clock = clock
        self.ends = clock.now() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends - self.clock.now()) * 1000))


@dataclass
class Result:
    status: str  # SUCCESS or FAILED
    physical_id: str
    data: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    polls: int = 0


@dataclass
class Provider:
    """One Provider (on_event + is_complete + waiter state machine)."""

    clock: FakeClock
    on_event_timeout: float = 300.0
    is_complete_timeout: float = 120.0
    query_interval: float = 10.0
    total_timeout: float = 45 * 60.0

    def send(
        self,
        request_type: str,
        resource_type: str,
        props: dict[str, Any],
        *,
        physical_id: str | None = None,
        old_props: dict[str, Any] | None = None,
        logical_id: str = "Resource",
    ) -> Result:
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:us-east-1:111122223333:function:framework-onEvent",
            "ResponseURL": "https://cloudformation-custom-resource-response.example/secret",
            "StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/e5search-dev-ml/x",
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            # CloudFormation hands every property over as a string.
            "ResourceProperties": stringify(
                {"ServiceToken": "arn:aws:lambda:us-east-1:111122223333:function:x", **props}
            ),
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        if old_props is not None:
            event["OldResourceProperties"] = stringify(old_props)
        if request_type == "Delete" and physical_id == CREATE_FAILED_MARKER:
            return Result("SUCCESS", physical_id)
        started = self.clock.now()
        try:
            result = handler.on_event(
                copy.deepcopy(event), FakeLambdaContext(self.clock, self.on_event_timeout)
            )
        except Exception as exc:
            failed_id = physical_id or CREATE_FAILED_MARKER
            return Result("FAILED", failed_id, reason=str(exc))
        merged = {**event, **result}
        merged["PhysicalResourceId"] = (
            result.get("PhysicalResourceId") or physical_id or event["RequestId"]
        )
        if request_type == "Delete":
            assert merged["PhysicalResourceId"] == physical_id, "Delete must not change the id"
        polls = 0
        while True:
            polls += 1
            try:
                answer = handler.is_complete(
                    copy.deepcopy(merged), FakeLambdaContext(self.clock, self.is_complete_timeout)
                )
            except Exception as exc:
                return Result("FAILED", merged["PhysicalResourceId"], reason=str(exc), polls=polls)
            if answer.get("IsComplete"):
                data = {**(merged.get("Data") or {}), **(answer.get("Data") or {})}
                return Result("SUCCESS", merged["PhysicalResourceId"], data, polls=polls)
            assert not answer.get("Data"), '"Data" is not allowed if "IsComplete" is "False"'
            if self.clock.now() - started >= self.total_timeout:
                return Result(
                    "FAILED",
                    merged["PhysicalResourceId"],
                    reason="Operation timed out",
                    polls=polls,
                )
            self.clock.sleep(self.query_interval)


def stringify(value: Any) -> Any:
    """What CloudFormation does to custom-resource properties: every scalar becomes a string."""
    if isinstance(value, dict):
        return {k: stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
