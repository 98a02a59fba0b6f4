"""cdk-nag wiring: the AwsSolutions pack runs on every synth, and each finding
we accept is acknowledged on the exact construct, one rule id at a time, with
the reason we accept it. An unacknowledged finding fails synthesis."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def enable_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Accept one cdk-nag finding on ``scope`` (and its children) for ``reason``."""
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a specific reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
