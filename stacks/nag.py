"""cdk-nag wiring: the AwsSolutions pack runs on every synth, and each finding
we accept is acknowledged on the exact construct, one rule id at a time, with
the reason we accept it. An unacknowledged finding fails synthesis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

# While set, acknowledge() records instead of applying: the audit in
# tests/infra/test_quality_gates.py uses it to prove every acknowledgement
# silences a finding that really exists.
_recorder: list[str] | None = None


def enable_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def arn_env(stack: cdk.Stack) -> tuple[str, str]:
    """Region and account as cdk-nag spells them inside a finding id: the literal value
    in an environment-specific stack, the pseudo parameter in an agnostic one."""
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    return region, account


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Accept one cdk-nag finding on ``scope`` (and its children) for ``reason``."""
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a specific reason, got {reason!r}")
    if _recorder is not None:
        _recorder.append(f"{scope.node.path} {rule_id}")
        return
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


@contextmanager
def acknowledgements_recorded() -> Iterator[list[str]]:
    """Within the block, list acknowledgements ("<path> <rule>") instead of applying them."""
    global _recorder
    _recorder = []
    try:
        yield _recorder
    finally:
        _recorder = None
