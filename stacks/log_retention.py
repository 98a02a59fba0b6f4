"""Log groups of this app: retention in cdk.json's days, encrypted with a key of the stack.

jsii enums carry member names ("TWO_WEEKS"), not the day counts that
cdk.json speaks in, so the translation lives here once.

Every log group is encrypted with one customer managed KMS key per stack
(``LogsKey``) instead of the CloudWatch Logs service default: the key's policy
decides who can ever read the data, and the key's removal follows the
environment's removal policy, like the logs. The key policy follows the
CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using AWS KMS":
the regional service principal ``logs.<region>.amazonaws.com`` may use the key
only with an encryption context naming a log group of this account and
region (``kms:EncryptionContext:aws:logs:arn``). Writers (Lambda, OpenSearch
Service, SageMaker) need no KMS permission of their own: CloudWatch Logs encrypts.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
}  # fmt: skip

ALLOWED_DAYS = tuple(_DAYS)
LOGS_KEY_ID = "LogsKey"


def retention_days(days: int) -> logs.RetentionDays:
    """Config validation restricts ``days`` to ALLOWED_DAYS, so the lookup cannot miss."""
    return logs.RetentionDays[_DAYS[days]]


def logs_key(stack: cdk.Stack, removal_policy: cdk.RemovalPolicy) -> kms.Key:
    """The stack's one log-encryption key, created on first use."""
    existing = stack.node.try_find_child(LOGS_KEY_ID)
    if existing is not None:
        assert isinstance(existing, kms.Key)
        return existing
    key = kms.Key(
        stack,
        LOGS_KEY_ID,
        description=f"{stack.stack_name}: encrypts this stack's CloudWatch Logs log groups",
        enable_key_rotation=True,
        removal_policy=removal_policy,
        # Only used when removal_policy is DESTROY: the shortest wait KMS allows.
        pending_window=cdk.Duration.days(7),
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfThisAccountAndRegion",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )
    return key


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    removal_policy: cdk.RemovalPolicy,
    **kwargs: Any,
) -> logs.LogGroup:
    """A ``logs.LogGroup`` (same keyword arguments) encrypted with its stack's LogsKey."""
    stack = cdk.Stack.of(scope)
    return logs.LogGroup(
        scope,
        construct_id,
        removal_policy=removal_policy,
        encryption_key=logs_key(stack, removal_policy),
        **kwargs,
    )
