"""The custom resources that connect the domain to the endpoint (see docs/ml-setup.md).

Five resources, each its own type so CloudFormation orders and updates them
independently: the security-plugin mappings, the ML Commons connector, the
asymmetric remote model (registered and deployed), the semantic index, and the
hybrid search pipeline.
One Provider (on_event + is_complete, total timeout under CloudFormation's
hour) runs ``lambdas/ml_setup`` as the domain stack's setup role.

This stack is the only one that waits for both the domain and the endpoint;
those two deploy in parallel.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.embedding_endpoint import EmbeddingEndpointStack
from stacks.ingest_capacity import IngestCapacity
from stacks.ingest_capacity import derive as derive_capacity
from stacks.lambda_bundling import python_asset
from stacks.log_retention import encrypted_log_group, retention_days
from stacks.nag import acknowledge
from stacks.reembed_rate import copy_docs_per_second
from stacks.search_domain import SearchDomainStack

LAMBDA_SOURCE = Path(__file__).resolve().parents[1] / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14
# Inside CloudFormation's one-hour custom-resource limit, with room for the
# framework to report; the handler's own deploy wait (WAIT_TIMEOUT) is shorter
# still, so a stuck deployment fails with ML Commons' state and is cleaned up.
TOTAL_TIMEOUT = cdk.Duration.minutes(50)
WAIT_TIMEOUT_SECONDS = 40 * 60
# The re-embedding copy of an index replacement must fit in the wait, with
# room for the verification and the alias move; longer copies are refused up
# front (a copy outside CloudFormation, `tools.migrate`, is not built yet).
MIGRATION_BUDGET_SECONDS = WAIT_TIMEOUT_SECONDS - 5 * 60
# What model/inference.py does (no setting changes it): part of the identity
# so that a change of the handler's pooling shows up as an identity change.
POOLING = "masked_mean"
NORMALIZE = True
# Whether neural-search sends content_type (and so whether the endpoint adds a prefix).
IS_ASYMMETRIC = True


def embedding_identity(config: EnvironmentConfig) -> dict[str, object]:
    """What makes two vectors comparable; any change means every document is re-embedded."""
    return {
        "ModelId": config.model_id,
        "ModelRevision": config.model_revision,
        "QueryPrefix": config.query_prefix,
        "PassagePrefix": config.passage_prefix,
        "IsAsymmetric": IS_ASYMMETRIC,
        "Pooling": POOLING,
        "Normalize": NORMALIZE,
        "EmbeddingDimension": config.embedding_dimension,
        "SpaceType": config.space_type,
    }


SERVICE_TIMEOUT = cdk.Duration.minutes(55)


def ingest_capacity(config: EnvironmentConfig) -> IngestCapacity:
    """Connector pool, timeouts, semantic batch and loader pace (stacks/ingest_capacity.py)."""
    return derive_capacity(
        config.endpoint_instance_type,
        config.endpoint_min_capacity,
        config.endpoint_max_capacity,
        config.data_node_count,
    )


def connections_per_node(config: EnvironmentConfig) -> int:
    """``client_config.max_connection`` is per data node: split the endpoint's capacity."""
    return ingest_capacity(config).max_connection


def setup_role_name(config: EnvironmentConfig) -> str:
    return f"{config.prefix}-ml-setup"


def client_role_name(config: EnvironmentConfig) -> str:
    """The security-plugin role the domain stack's search-client IAM role is mapped to."""
    return f"{config.prefix}-search-client"


class MlSetupStack(cdk.Stack):
    """Access mapping -> connector -> model -> semantic index, with stack outputs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        domain: SearchDomainStack,
        endpoint: EmbeddingEndpointStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(domain)
        self.add_stack_dependency(endpoint)
        role = domain.setup_role
        # Logs follow the environment's removal policy, like every stateful resource.
        removal = cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY
        code = python_asset(LAMBDA_SOURCE, ["ml_setup"], RUNTIME)
        log_group = encrypted_log_group(
            self,
            "Logs",
            retention=retention_days(config.log_retention_days),
            removal_policy=removal,
        )
        # The role lives in the domain stack; this policy lives here so the
        # domain stack never refers to this one.
        logs_policy = iam.Policy(
            self,
            "SetupRoleLogs",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:*"],
                )
            ],
        )
        acknowledge(
            logs_policy,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(log_group.node.default_child)}"
            ".Arn>:*]",
            "Log streams of this one log group: stream names are chosen by Lambda at run time.",
        )

        def handler(name: str, entry: str, timeout: cdk.Duration) -> lambda_.Function:
            function = lambda_.Function(
                self,
                name,
                runtime=RUNTIME,
                architecture=lambda_.Architecture.X86_64,
                code=code,
                handler=f"ml_setup.handler.{entry}",
                role=role,
                timeout=timeout,
                memory_size=256,
                log_group=log_group,
                environment={"WAIT_TIMEOUT_SECONDS": str(WAIT_TIMEOUT_SECONDS)},
                description=f"{config.prefix}: ML setup custom resources ({entry})",
            )
            function.node.add_dependency(logs_policy)
            return function

        on_event = handler("OnEvent", "on_event", cdk.Duration.minutes(10))
        is_complete = handler("IsComplete", "is_complete", cdk.Duration.minutes(2))
        # The monitoring stack alarms on their errors.
        self.handlers = (on_event, is_complete)
        framework_logs = encrypted_log_group(
            self,
            "ProviderLogs",
            retention=retention_days(config.log_retention_days),
            removal_policy=removal,
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=on_event,
            is_complete_handler=is_complete,
            query_interval=cdk.Duration.seconds(15),
            total_timeout=TOTAL_TIMEOUT,
            log_group=framework_logs,
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                destination=encrypted_log_group(
                    self,
                    "WaiterLogs",
                    retention=retention_days(config.log_retention_days),
                    removal_policy=removal,
                ),
                level=sfn.LogLevel.ALL,
            ),
        )
        self._acknowledge_provider(provider, [on_event, is_complete])
        self._drop_redundant_depends_on(provider)

        common = {"DomainEndpoint": domain.domain.domain_endpoint, "Region": self.region}

        def resource(name: str, resource_type: str, props: dict[str, object]) -> cdk.CustomResource:
            return cdk.CustomResource(
                self,
                name,
                service_token=provider.service_token,
                resource_type=resource_type,
                properties={**common, **props},
                service_timeout=SERVICE_TIMEOUT,
            )

        index_base = config.index_name
        mapping = resource(
            "AccessMapping",
            "Custom::MlAccessMapping",
            {
                "MasterRoleArn": domain.master_role.role_arn,
                "SetupRoleArn": role.role_arn,
                "RoleName": setup_role_name(config),
                "ClientRoleArn": domain.client_role.role_arn,
                "ClientRoleName": client_role_name(config),
                # Concrete index names are <index_name>-<8 hex>; <index_name> itself is
                # the alias that follows the current one (docs/ml-setup.md). Both the
                # setup role (manage) and the client role (documents) use these.
                "IndexPatterns": [f"{index_base}-*", index_base],
                # The setup role also manages the hybrid search pipeline below.
                "ManageSearchPipelines": True,
            },
        )
        capacity = ingest_capacity(config)
        connector = resource(
            "Connector",
            "Custom::MlConnector",
            {
                "Name": f"{config.prefix}-sagemaker-e5",
                "Description": f"SageMaker endpoint {config.endpoint_name} ({config.model_id})",
                # The attribute (not the configured name) makes the connector wait
                # for the endpoint resource.
                "EndpointName": endpoint.endpoint.attr_endpoint_name,
                "EndpointRegion": endpoint.region,
                "UrlSuffix": cdk.Aws.URL_SUFFIX,
                "ConnectorRoleArn": domain.connector_role.role_arn,
                # Sized to the endpoint (stacks/ingest_capacity.py, docs/ingest-capacity.md).
                "MaxConnections": capacity.max_connection,
                "ConnectionTimeoutSeconds": capacity.connection_timeout,
                "ReadTimeoutSeconds": capacity.read_timeout,
                "MaxRetryTimes": capacity.max_retry_times,
                "RetryBackoffMillis": capacity.retry_backoff_millis,
                "RetryTimeoutSeconds": capacity.retry_timeout_seconds,
                "RetryBackoffPolicy": capacity.retry_backoff_policy,
            },
        )
        connector.node.add_dependency(mapping)
        model_props: dict[str, object] = {
            "ModelName": f"{config.prefix}-e5",
            "Description": f"{config.model_id}@{config.model_revision[:12]} on SageMaker",
            "ConnectorId": connector.get_att_string("ConnectorId"),
            "ModelType": "TEXT_EMBEDDING",
            "FrameworkType": "SENTENCE_TRANSFORMERS",
            "EmbeddingDimension": config.embedding_dimension,
            "SpaceType": config.space_type,
            "IsAsymmetric": IS_ASYMMETRIC,
            "QueryPrefix": config.query_prefix,
            "PassagePrefix": config.passage_prefix,
        }
        if "e5" in config.model_id.lower():
            model_props["ModelFamily"] = "e5"
        model = resource("Model", "Custom::MlModel", model_props)
        # Weights by sub-query position: the README's hybrid query puts the
        # lexical match first and the neural clause second.
        semantic = Decimal(str(config.hybrid_semantic_weight))
        pipeline = resource(
            "HybridSearchPipeline",
            "Custom::HybridSearchPipeline",
            {
                "Name": f"{index_base}-hybrid",
                "Description": f"{config.prefix}: hybrid search (match first, neural second)",
                "Normalization": config.hybrid_normalization,
                "Combination": config.hybrid_combination,
                "Weights": [str(1 - semantic), str(semantic)],
            },
        )
        # The setup role may manage search pipelines once the mapping exists.
        pipeline.node.add_dependency(mapping)
        # Optional index properties, passed only when set so an environment that
        # sets neither keeps the template (and the index name) it had.
        index_options: dict[str, object] = {}
        if config.chunking:
            # JSON-encoded: CloudFormation would turn the numbers into strings.
            index_options["Chunking"] = json.dumps(config.chunking_mapping, sort_keys=True)
        if config.hybrid_default_pipeline:
            # The attribute, not the name: the index waits for the pipeline (an
            # index must never name a pipeline that does not exist yet) and is
            # deleted before it.
            index_options["DefaultSearchPipeline"] = pipeline.get_att_string("PipelineName")
        index = resource(
            "SemanticIndex",
            "Custom::SemanticIndex",
            {
                "IndexName": index_base,
                "FieldName": config.semantic_field,
                "ModelId": model.get_att_string("ModelId"),
                "EmbeddingDimension": config.embedding_dimension,
                "SpaceType": config.space_type,
                "NumberOfShards": config.index_shards,
                "NumberOfReplicas": config.index_replicas,
                "RetainOnDelete": config.retain,
                "EmbeddingIdentity": embedding_identity(config),
                "ReindexDocsPerSecond": copy_docs_per_second(
                    config.endpoint_instance_type, config.endpoint_min_capacity
                ),
                "MigrationBudgetSeconds": MIGRATION_BUDGET_SECONDS,
                "EnvironmentName": config.name,
                # A dynamic index setting: a change is applied in place.
                "SemanticIngestBatchSize": capacity.semantic_ingest_batch_size,
                **index_options,
            },
        )
        self.search_pipeline = pipeline.get_att_string("PipelineName")
        self.connector_id = connector.get_att_string("ConnectorId")
        self.model_id = model.get_att_string("ModelId")
        self.index_name = index.get_att_string("IndexName")
        self.index_alias = index.get_att_string("IndexAlias")
        # DomainEndpoint is an output of the domain stack (re-exporting an import
        # here is what cfn-lint W6001 warns about); tools read both stacks.
        cdk.CfnOutput(self, "SemanticField", value=config.semantic_field)
        cdk.CfnOutput(self, "ConnectorId", value=self.connector_id)
        cdk.CfnOutput(self, "ModelId", value=self.model_id)
        cdk.CfnOutput(
            self,
            "IndexAlias",
            value=self.index_alias,
            description="Stable name for clients: the alias always points at the current index",
        )
        cdk.CfnOutput(
            self,
            "HybridSearchPipelineName",
            value=self.search_pipeline,
            description="Search pipeline for hybrid queries: ?search_pipeline=<this>",
        )
        cdk.CfnOutput(
            self,
            "IndexName",
            value=self.index_name,
            description="The concrete index behind IndexAlias (changes when the index is replaced)",
        )
        # python -m tools.ingest reads both as its defaults (docs/ingest-capacity.md).
        cdk.CfnOutput(
            self,
            "SemanticIngestBatchSize",
            value=str(capacity.semantic_ingest_batch_size),
            description="index.neural_search.semantic_ingest_batch_size: documents per predict",
        )
        cdk.CfnOutput(
            self,
            "IngestConcurrency",
            value=str(capacity.loader_concurrency),
            description="Bulk requests in flight the guaranteed endpoint capacity serves "
            "without queueing past one request per worker",
        )

    def _arn_of(self, function: Construct) -> str:
        """cdk-nag's evidence string for ``<Function>.Arn``."""
        cfn = function.node.default_child
        assert isinstance(cfn, cdk.CfnElement)
        return f"<{self.get_logical_id(cfn)}.Arn>"

    def _drop_redundant_depends_on(self, provider: cr.Provider) -> None:
        """Keep only the DependsOn on each role's policy (cfn-lint W3005).

        The framework's functions and state machine depend on their role both
        through ``Fn::GetAtt`` and through ``DependsOn``; the policy is the only
        dependency ``GetAtt`` does not already give.
        """
        targets = [
            (provider.node.find_child(f"framework-{name}"), "ServiceRole")
            for name in ("onEvent", "isComplete", "onTimeout")
        ]
        targets.append((provider.node.find_child("waiter-state-machine"), "Role"))
        for construct, role_id in targets:
            policy = construct.node.find_child(role_id).node.find_child("DefaultPolicy")
            resource = construct.node.default_child
            assert isinstance(resource, cdk.CfnResource)
            policy_cfn = policy.node.default_child
            assert isinstance(policy_cfn, cdk.CfnElement)
            resource.add_override("DependsOn", [self.get_logical_id(policy_cfn)])

    def _acknowledge_provider(
        self, provider: cr.Provider, handlers: list[lambda_.Function]
    ) -> None:
        """Findings on the CDK Provider framework's own functions and roles, one by one."""
        basic = (
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        )
        framework = {
            name: provider.node.find_child(f"framework-{name}")
            for name in ("onEvent", "isComplete", "onTimeout")
        }
        for name, function in framework.items():
            role = function.node.find_child("ServiceRole")
            acknowledge(
                role,
                f"AwsSolutions-IAM4[{basic}]",
                f"CDK Provider framework function {name}: the AWS managed basic execution policy "
                "only lets it write its own logs.",
            )
            for target in handlers:
                acknowledge(
                    role.node.find_child("DefaultPolicy"),
                    f"AwsSolutions-IAM5[Resource::{self._arn_of(target)}:*]",
                    f"CDK Provider framework function {name} invokes our handler "
                    f"{target.node.id} and its versions (the ':*' suffix) and nothing else.",
                )
        waiter_policy = (
            provider.node.find_child("waiter-state-machine")
            .node.find_child("Role")
            .node.find_child("DefaultPolicy")
        )
        for name in ("isComplete", "onTimeout"):
            acknowledge(
                waiter_policy,
                f"AwsSolutions-IAM5[Resource::{self._arn_of(framework[name])}:*]",
                f"The waiter state machine invokes the framework's {name} function and its "
                "versions (the ':*' suffix) and nothing else.",
            )
        acknowledge(
            waiter_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions logging to CloudWatch needs logs:CreateLogDelivery and related "
            "vended-log actions, which support no resource-level permissions (Resource '*').",
        )
        acknowledge(
            provider,
            "AwsSolutions-SF2",
            "X-Ray tracing of the framework's waiter state machine adds cost without insight: it "
            "only polls is_complete, whose logs are in CloudWatch.",
        )
