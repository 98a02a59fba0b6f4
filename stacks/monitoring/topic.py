"""The SNS topic every alarm of an environment notifies, and its optional email subscription."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import EnvironmentConfig


class AlarmTopic(Construct):
    """A KMS-encrypted, TLS-only topic.

    A customer managed key rather than the AWS managed ``alias/aws/sns``: the
    managed key's policy cannot be changed, and CloudWatch alarms can only
    publish to an encrypted topic whose key lets cloudwatch.amazonaws.com use
    it (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger).
    ``enforce_ssl`` adds the deny-unless-``aws:SecureTransport`` statement
    cdk-nag's AwsSolutions-SNS3 asks for; the key satisfies AwsSolutions-SNS2.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description=f"Encrypts the {config.prefix} alarm topic",
            removal_policy=removal,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                # The statement SNS documents for CloudWatch as an event source of an
                # encrypted topic (no condition: it is not documented that CloudWatch
                # passes aws:SourceAccount to KMS); who may publish is limited by the
                # topic policy below, and the key encrypts nothing else.
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"{config.prefix} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
