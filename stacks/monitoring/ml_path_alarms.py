"""The ML path: errors of the setup custom resources, and a scheduled end-to-end check.

``lambdas/ml_health`` runs every ``ml_health_check_minutes``: it GETs the
model (must be DEPLOYED) and embeds one query through ``_predict``, then
publishes ``E5Search/MlHealth`` ``Healthy`` = 1 or 0. The alarm treats missing
data as breaching, so a check that does not run (or cannot publish) alarms too.

Identity of the check, least privilege at both layers:
* IAM: its execution role may only write its own logs, put metrics in the
  ``E5Search/MlHealth`` namespace, and assume the domain stack's search-client
  role. It assumes that role with a *session policy* allowing only
  ``es:ESHttpGet`` on the model and ``es:ESHttpPost`` on its ``_predict``, so
  the session cannot touch documents even though the role could. (The domain's
  access policy names the role ARN, so the session policy does constrain it.)
* Inside OpenSearch the session maps to the existing search-client security
  role, which already holds ``cluster:admin/opensearch/ml/models/get`` and
  ``cluster:admin/opensearch/ml/predict`` (lambdas/ml_setup/access_mapping.py
  CLIENT_CLUSTER_ACTIONS): no new role mapping, and nothing broader.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.lambda_bundling import python_asset
from stacks.log_retention import encrypted_log_group, retention_days
from stacks.ml_setup import LAMBDA_SOURCE, RUNTIME, MlSetupStack
from stacks.monitoring import metrics as m
from stacks.monitoring.alarm_set import AlarmSet, Cmp, Missing, minutes
from stacks.nag import acknowledge
from stacks.search_domain import SearchDomainStack

REQUEST_TIMEOUT_SECONDS = 20


class MlPathAlarms(AlarmSet):
    """Setup Lambda errors, the health-check function and its schedule, and their alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        topic: sns.ITopic,
        domain: SearchDomainStack,
        ml_setup: MlSetupStack,
    ) -> None:
        super().__init__(scope, construct_id, config=config, topic=topic)
        for function in ml_setup.handlers:
            self.add(
                "MlSetupErrors",
                function.metric_errors(statistic="Sum", period=minutes(5)),
                threshold=1, comparison=Cmp.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1, missing=Missing.NOT_BREACHING,
                construct_id=f"MlSetupErrors{function.node.id}",
                description=(
                    f"{config.prefix}: the ML setup custom resource handler {function.node.id} "
                    "failed (see its log group; the CloudFormation event has the reason)"
                ),
            )  # fmt: skip
        self.health_function: lambda_.Function | None = None
        if config.alarm_enabled("MlHealthCheck"):
            self.health_function = self._health_check(config, domain, ml_setup)
            interval = config.ml_health_check_minutes
            self.add(
                "MlHealthCheck",
                self.healthy_metric(),
                threshold=1, comparison=Cmp.LESS_THAN_THRESHOLD,
                evaluation_periods=3, datapoints_to_alarm=2, missing=Missing.BREACHING,
                description=(
                    f"{config.prefix}: model not DEPLOYED, _predict failing, or the check every "
                    f"{interval} min did not report (2 of the last 3 periods)"
                ),
            )  # fmt: skip

    def healthy_metric(self, statistic: str = "Minimum") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=m.ML_HEALTH_NAMESPACE,
            metric_name=m.ML_HEALTHY,
            dimensions_map={m.ENVIRONMENT_DIMENSION: self.config.name},
            statistic=statistic,
            period=minutes(self.config.ml_health_check_minutes),
        )

    def _health_check(
        self, config: EnvironmentConfig, domain: SearchDomainStack, ml_setup: MlSetupStack
    ) -> lambda_.Function:
        stack = cdk.Stack.of(self)
        removal = cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY
        log_group = encrypted_log_group(
            self,
            "HealthCheckLogs",
            retention=retention_days(config.log_retention_days),
            removal_policy=removal,
        )
        role = iam.Role(
            self,
            "HealthCheckRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=(
                f"ML health check of {config.prefix}: assumes the search-client role with a "
                "session policy limited to GET model and POST _predict"
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeSearchClientRole",
                actions=["sts:AssumeRole"],
                resources=[domain.client_role.role_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishHealthMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": m.ML_HEALTH_NAMESPACE}},
            )
        )
        model_arn = f"{domain.domain_arn}/_plugins/_ml/models/{ml_setup.model_id}"
        session_policy = stack.to_json_string(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "GetModel", "Effect": "Allow", "Action": "es:ESHttpGet",
                     "Resource": model_arn},
                    {"Sid": "Predict", "Effect": "Allow", "Action": "es:ESHttpPost",
                     "Resource": f"{model_arn}/_predict"},
                ],
            }
        )  # fmt: skip
        function = lambda_.Function(
            self,
            "HealthCheck",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=python_asset(LAMBDA_SOURCE, ["ml_health"], RUNTIME),
            handler="ml_health.handler.handler",
            role=role,
            timeout=cdk.Duration.seconds(2 * REQUEST_TIMEOUT_SECONDS + 20),
            memory_size=256,
            log_group=log_group,
            environment={
                "DOMAIN_ENDPOINT": domain.domain.domain_endpoint,
                "MODEL_ID": ml_setup.model_id,
                "EMBEDDING_DIMENSION": str(config.embedding_dimension),
                "CLIENT_ROLE_ARN": domain.client_role.role_arn,
                "SESSION_POLICY": session_policy,
                "ENVIRONMENT_NAME": config.name,
                "METRIC_NAMESPACE": m.ML_HEALTH_NAMESPACE,
                "REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
            },
            description=f"{config.prefix}: checks the ML model is DEPLOYED and _predict answers",
        )
        # Only the policy: the role is already a dependency through GetAtt (cfn-lint W3005).
        policy = role.node.find_child("DefaultPolicy").node.default_child
        cfn_function = function.node.default_child
        assert isinstance(policy, cdk.CfnElement) and isinstance(cfn_function, cdk.CfnResource)
        cfn_function.add_override("DependsOn", [stack.get_logical_id(policy)])
        events.Rule(
            self,
            "HealthCheckSchedule",
            description=f"{config.prefix}: run the ML health check",
            schedule=events.Schedule.rate(minutes(config.ml_health_check_minutes)),
            targets=[targets.LambdaFunction(function, retry_attempts=0)],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource-level permissions; the condition limits it "
            f"to the {m.ML_HEALTH_NAMESPACE} namespace.",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(log_group.node.default_child)}"
            ".Arn>:*]",
            "Log streams of this function's own log group: stream names are chosen by Lambda.",
        )
        return function
