"""Everything one environment deploys, built the same way by `cdk deploy` and by the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.embedding_endpoint import EmbeddingEndpointStack
from stacks.ml_setup import MlSetupStack
from stacks.monitoring import MonitoringStack
from stacks.search_domain import SearchDomainStack


@dataclass(frozen=True)
class EnvironmentStacks:
    endpoint: EmbeddingEndpointStack
    domain: SearchDomainStack
    ml_setup: MlSetupStack
    monitoring: MonitoringStack


def build_environment(scope: Construct, config: EnvironmentConfig) -> EnvironmentStacks:
    """Create the stacks of ``config`` under ``scope`` (the app, or a pipeline Stage).

    Stack names carry the app and environment names, so several environments
    can live in one account and region, and are set explicitly so that a stack
    deployed by the pipeline (inside a Stage, which would otherwise prefix the
    stage name) is the same stack `make deploy` and `make destroy` address.
    """
    env = (
        cdk.Environment(account=config.account, region=config.region)
        if config.account and config.region
        else None
    )
    tags = {"app": config.app_name, "environment": config.name}
    endpoint = EmbeddingEndpointStack(
        scope,
        f"{config.prefix}-endpoint",
        stack_name=f"{config.prefix}-endpoint",
        config=config,
        env=env,
        description=f"{config.prefix}: SageMaker endpoint serving {config.model_id}",
        tags=tags,
    )
    domain = SearchDomainStack(
        scope,
        f"{config.prefix}-search",
        stack_name=f"{config.prefix}-search",
        config=config,
        env=env,
        description=f"{config.prefix}: OpenSearch {config.engine_version} domain and its IAM roles",
        tags=tags,
    )
    ml_setup = MlSetupStack(
        scope,
        f"{config.prefix}-ml-setup",
        stack_name=f"{config.prefix}-ml-setup",
        config=config,
        domain=domain,
        endpoint=endpoint,
        env=env,
        description=f"{config.prefix}: ML Commons connector, asymmetric model and semantic index",
        tags=tags,
    )
    monitoring = MonitoringStack(
        scope,
        f"{config.prefix}-monitoring",
        stack_name=f"{config.prefix}-monitoring",
        config=config,
        domain=domain,
        endpoint=endpoint,
        ml_setup=ml_setup,
        env=env,
        description=f"{config.prefix}: alarms, their SNS topic, the ML health check, a dashboard",
        tags=tags,
    )
    return EnvironmentStacks(
        endpoint=endpoint, domain=domain, ml_setup=ml_setup, monitoring=monitoring
    )
