"""The SageMaker real-time endpoint that embeds texts with E5.

It runs the Hugging Face PyTorch inference DLC with our ``model/`` code (which
adds ``query: `` or ``passage: `` per request) and pulls the weights from the
Hub at a pinned revision. Nothing here refers to the search domain: the
endpoint and the domain deploy in parallel, and only the ML setup stack waits
for both.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.inference_image import REGISTRY_ACCOUNTS, REPOSITORY, image_uri_for_stack
from stacks.instance_types import has_local_instance_storage
from stacks.log_retention import encrypted_log_group, retention_days
from stacks.model_artifact import build_model_archive
from stacks.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent
VARIANT_NAME = "AllTraffic"


def target_concurrency(config: EnvironmentConfig) -> int:
    """The scaling policy's target: the override, else one request per worker.

    Tracking concurrent requests (queued ones included) rather than invocations
    per minute: under ingest each invocation takes seconds, so a saturated
    instance serves few invocations a minute and a per-minute target never fires
    (docs/ingest-capacity.md, "Autoscaling").
    """
    if config.endpoint_target_concurrency is not None:
        return config.endpoint_target_concurrency
    from stacks.ingest_capacity import autoscaling_target_concurrency  # imports this module

    return autoscaling_target_concurrency(config.endpoint_instance_type)


class EmbeddingEndpointStack(cdk.Stack):
    """SageMaker model, endpoint config, endpoint and autoscaling for one environment."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.endpoint_name = config.endpoint_name
        removal = cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY

        archive = build_model_archive(
            ROOT / "model", ROOT / "build" / config.name / "model" / "model.tar.gz"
        )
        code_asset = s3_assets.Asset(self, "InferenceCode", path=str(archive))

        # SageMaker writes container logs here; creating the group ourselves
        # gives it a retention period and ties its lifetime to the stack.
        log_group = encrypted_log_group(
            self,
            "EndpointLogs",
            log_group_name=f"/aws/sagemaker/Endpoints/{self.endpoint_name}",
            retention=retention_days(config.log_retention_days),
            removal_policy=removal,
        )

        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs the {config.prefix} E5 endpoint: image pull, code read, own logs",
        )
        self._grant_execution(role, code_asset, log_group)

        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri_for_stack(self, gpu=config.endpoint_uses_gpu),
                model_data_url=code_asset.s3_object_url,
                environment=container_environment(config),
            ),
        )
        # The model must not start before the role's policy lets it read the
        # code and pull the image (the role ARN alone orders only the role).
        model.node.add_dependency(role.node.find_child("DefaultPolicy"))

        endpoint_config_props: dict = {
            "production_variants": [
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=model.attr_model_name,
                    initial_instance_count=config.endpoint_initial_instance_count,
                    instance_type=config.endpoint_instance_type,
                    initial_variant_weight=1.0,
                )
            ]
        }
        if has_local_instance_storage(config.endpoint_instance_type):
            self.storage_key = None
        else:
            # Instances with NVMe instance storage encrypt it in hardware and
            # reject a KmsKeyId; all others get a customer managed key.
            self.storage_key = kms.Key(
                self,
                "StorageKey",
                enable_key_rotation=True,
                description=f"Encrypts the {config.prefix} endpoint's ML storage volumes",
                removal_policy=removal,
            )
            endpoint_config_props["kms_key_id"] = self.storage_key.key_arn
        # No EndpointConfigName: CloudFormation must be able to replace the
        # config (any change to it is a replacement) while the endpoint stays.
        endpoint_config = sagemaker.CfnEndpointConfig(
            self, "EndpointConfig", **endpoint_config_props
        )

        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
        )
        self.endpoint_arn = self.format_arn(
            service="sagemaker", resource="endpoint", resource_name=self.endpoint_name.lower()
        )

        target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT_NAME}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=config.endpoint_min_capacity,
            max_capacity=config.endpoint_max_capacity,
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "ConcurrentRequestsPerModel",
            predefined_metric=(
                appscaling.PredefinedMetric.SAGEMAKER_VARIANT_CONCURRENT_REQUESTS_PER_MODEL_HIGH_RESOLUTION
            ),
            target_value=target_concurrency(config),
            # The metric is sampled every 10 s; one minute between scale-outs lets a
            # new instance come into service before the next step is judged.
            scale_in_cooldown=cdk.Duration.minutes(5),
            scale_out_cooldown=cdk.Duration.minutes(1),
        )

        cdk.CfnOutput(self, "EndpointName", value=self.endpoint_name)

    def _grant_execution(
        self, role: iam.Role, code: s3_assets.Asset, log_group: logs.LogGroup
    ) -> None:
        """Least privilege, not AmazonSageMakerFullAccess: what the container needs, no more."""
        registries = sorted(set(REGISTRY_ACCOUNTS.values()))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullInferenceImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[
                    self.format_arn(
                        service="ecr",
                        account=account,
                        resource="repository",
                        resource_name=REPOSITORY,
                    )
                    for account in registries
                ]
                if cdk.Token.is_unresolved(self.region)
                else [
                    self.format_arn(
                        service="ecr",
                        account=REGISTRY_ACCOUNTS[self.region],
                        resource="repository",
                        resource_name=REPOSITORY,
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrLogin",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadInferenceCode",
                actions=["s3:GetObject"],
                resources=[code.bucket.arn_for_objects(code.s3_object_key)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_group.log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints*"}},
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; "
            "cloudwatch:PutMetricData is limited to the SageMaker endpoint namespace by condition.",
        )


# Request budget (model/inference.py refuses larger requests with a 400 before
# any model work). Measured: the real E5 (exact fp32) embeds 790 tokens/s of
# full 512-token windows on one torch thread of this project's benchmark
# machine (a 2-vCPU Sapphire Rapids VM, shared and loaded; benchmarks/
# request_budget.py, docs/model-server.md "Request budget"). Each MMS worker
# runs one thread and MMS starts one worker per vCPU, so a request's time
# depends on one vCPU's speed, not on the instance size. Extrapolated, not
# measured: a SageMaker vCPU is a hyperthread, worth SMT_SHARE of a core when
# its sibling is busy too, and older families are slower per vCPU by the
# factors below (assumed from their generation: AVX-512 without AMX, AVX2).
MEASURED_TOKENS_PER_SECOND = 790
SMT_SHARE = 0.6
FAMILY_SPEED = {
    **dict.fromkeys(("c7i", "m7i", "r7i"), 1.0),
    **dict.fromkeys(("c6i", "c6id", "m6i", "m6id", "r6i", "r6id"), 0.85),
    **dict.fromkeys(("c5", "c5d", "m5", "m5d", "r5", "r5d"), 0.7),
    **dict.fromkeys(("c4", "m4", "t2"), 0.5),
}
# Unmeasured here (no GPU): GPU families get the fastest CPU family's budget.
GPU_SPEED = 1.0
# The worst accepted request should take this long on the instance, well
# inside SageMaker's 60 s invocation limit (and leaving room for tokenising).
WORST_REQUEST_SECONDS = 20
WINDOW_TOKENS = 512
# Characters before tokenising, every family: ~1.4 s of tokenising on one
# loaded thread here (0.73 M characters/s), a few seconds on the slowest family.
MAX_REQUEST_CHARS = 1_000_000


def request_token_budget(instance_type: str) -> int:
    """Tokens per request (after truncation) for one worker on ``instance_type``.

    Rounded down to whole 512-token windows so the figure reads as "N full
    passages"; never below 10 windows, neural-search's ingest batch.
    """
    family = instance_type.split(".")[1]  # ml.<family>.<size>, validated at config load
    speed = FAMILY_SPEED.get(family, GPU_SPEED)
    tokens = MEASURED_TOKENS_PER_SECOND * speed * SMT_SHARE * WORST_REQUEST_SECONDS
    return max(10, int(tokens // WINDOW_TOKENS)) * WINDOW_TOKENS


def container_environment(config: EnvironmentConfig) -> dict[str, str]:
    """What the inference container is told: which weights, and how to embed.

    HF_MODEL_ID + HF_MODEL_REVISION make the toolkit download the pinned
    weights at start-up; our code/ from the model archive then serves them.
    """
    return {
        "HF_MODEL_ID": config.model_id,
        "HF_MODEL_REVISION": config.model_revision,
        "HF_TASK": "feature-extraction",
        # Read by model/inference.py: the prefixes come from config so another
        # asymmetric model family needs no code change.
        "EMBEDDING_QUERY_PREFIX": config.query_prefix,
        "EMBEDDING_PASSAGE_PREFIX": config.passage_prefix,
        # model/fast_path.py: "exact" unless the environment opted in to a fast path.
        "EMBEDDING_BACKEND": config.endpoint_inference_backend,
        # model/inference.py: the per-request budget, so the slowest accepted
        # request has a known duration on this instance type (see above).
        "EMBEDDING_MAX_REQUEST_TOKENS": str(request_token_budget(config.endpoint_instance_type)),
        "EMBEDDING_MAX_REQUEST_CHARS": str(MAX_REQUEST_CHARS),
    }
