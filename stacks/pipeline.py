"""The CDK Pipelines pipeline: source, test + synth, then one verified stage per environment.

Shape of a run (one CodePipeline, self-mutating):

    Source (CodeConnections) -> Build (make test, then cdk synth -c pipeline=true)
    -> UpdatePipeline -> Assets -> dev -> staging -> [approve] prod ...

Each environment stage deploys the stacks ``build_environment`` creates (the same
code ``make deploy`` runs) plus a tiny ``<env>-smoke`` stack, then runs
``python -m tools.smoke`` against what it just deployed. A stage whose search
path does not work fails there, so the next environment is never reached.

Identity of the smoke step (why it is built this way):
The smoke step must index, search and delete in the semantic index, call
``_predict`` and read the model: exactly what the domain's least-privilege
*search-client* role may do (the domain stack's ``ClientRole``, mapped by the
ML setup custom resources to the ``<app>-<env>-search-client`` security role;
never ``all_access``). So a passing smoke test also proves that role works.

1. the step runs as a per-environment *runner* role in the pipeline account
   (fixed name ``<app>-<env>-smoke-runner``), allowed only ``sts:AssumeRole``
   on that environment's smoke role;
2. the *smoke* role (fixed name ``<app>-<env>-smoke``, in the environment's
   account, deployed by the stage itself) trusts only that runner role ARN and
   may only describe the stage's stacks and assume the environment's
   search-client role (same account, which that role's trust allows);
3. ``tools.smoke`` reads the stack outputs with the smoke role, then assumes
   the search-client role (``--as-client``) to sign its requests.

The chain gives the pipeline account no power it does not already have: it
deploys these stacks through the bootstrap roles, which can do far more than
the search client. Both roles have fixed names because the other account must
name them in a policy before either exists; they are not replaced by
CloudFormation in normal updates.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.environment import EnvironmentStacks, build_environment
from stacks.nag import acknowledge, arn_env
from stacks.pipeline_config import PIPELINE_FLAG, PipelineConfig

PACKAGE_JSON = Path(__file__).resolve().parents[1] / "package.json"
SMOKE_STEP_PREFIX = "Smoke-"
APPROVAL_STEP_PREFIX = "Approve-"


def pinned_node_tool(name: str) -> str:
    """The exact version package.json pins for ``name`` (aws-cdk, cdk-assets).

    The pipeline's CodeBuild projects install the CDK CLI and cdk-assets with
    ``npm install -g``; left unset, CDK Pipelines installs whatever ``latest``
    is on the day a build runs. Reading package.json keeps them the versions
    ``make synth`` and the tests use, bumped in one place.
    """
    version = json.loads(PACKAGE_JSON.read_text())["devDependencies"][name]
    if not version[:1].isdigit():
        raise ValueError(f"package.json pins {name} as {version!r}; an exact version is needed")
    return version


def smoke_role_name(config: EnvironmentConfig) -> str:
    return f"{config.prefix}-smoke"


def smoke_runner_role_name(config: EnvironmentConfig) -> str:
    return f"{config.prefix}-smoke-runner"


def partition_of(region: str) -> str:
    """Literal partition: ARNs that cross stages must be strings, not ``AWS::Partition``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def role_arn(account: str, region: str, name: str) -> str:
    return f"arn:{partition_of(region)}:iam::{account}:role/{name}"


class SmokeAccessStack(cdk.Stack):
    """In the environment's account: the role the pipeline's smoke step assumes."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        environment: EnvironmentStacks,
        runner_role_arn: str,
        readable_stacks: list[cdk.Stack],
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.role = iam.Role(
            self,
            "SmokeRole",
            role_name=smoke_role_name(config),
            assumed_by=iam.ArnPrincipal(runner_role_arn),
            max_session_duration=cdk.Duration.hours(1),
            description=(
                f"Post-deploy smoke test of {config.prefix}: read its stack outputs, then act as "
                "the domain's search-client role"
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadEnvironmentOutputs",
                actions=["cloudformation:DescribeStacks"],
                resources=[
                    self.format_arn(
                        service="cloudformation",
                        resource="stack",
                        resource_name=f"{s.stack_name}/*",
                    )
                    for s in readable_stacks
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ActAsSearchClient",
                actions=["sts:AssumeRole"],
                resources=[environment.domain.client_role.role_arn],
            )
        )
        region, account = arn_env(self)
        for stack in readable_stacks:
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:{region}:"
                f"{account}:stack/{stack.stack_name}/*]",
                "A CloudFormation stack ARN ends in a generated id; the stack name before it is "
                "exact, so this names one stack.",
            )


class EnvironmentStage(cdk.Stage):
    """One environment: its application stacks and the smoke-test role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        pipeline: PipelineConfig,
        runner_role_arn: str,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(
                account=pipeline.stage_account(config), region=pipeline.stage_region(config)
            ),
        )
        self.config = config
        self.stacks = build_environment(self, config)
        self.app_stacks = [c for c in self.node.children if isinstance(c, cdk.Stack)]
        self.smoke = SmokeAccessStack(
            self,
            f"{config.prefix}-smoke",
            stack_name=f"{config.prefix}-smoke",
            config=config,
            environment=self.stacks,
            runner_role_arn=runner_role_arn,
            readable_stacks=self.app_stacks,
            description=f"{config.prefix}: role of the pipeline's post-deploy smoke test",
            tags={"app": config.app_name, "environment": config.name},
        )


class PipelineStack(cdk.Stack):
    """The self-mutating pipeline that deploys every configured environment in order."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: PipelineConfig, **kwargs
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(account=settings.account, region=settings.region),
            **kwargs,
        )
        self.settings = settings
        self.source = source = pipelines.CodePipelineSource.connection(
            settings.repository,
            settings.branch,
            connection_arn=settings.connection_arn,
            trigger_on_push=True,
        )
        synth = pipelines.ShellStep(
            "Synth",
            input=source,
            # The README's test command first: a red test suite never reaches synth.
            commands=["make test", "make pipeline-synth"],
            primary_output_directory="cdk.out",
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=settings.stack_name,
            synth=synth,
            self_mutation=True,
            cli_version=pinned_node_tool("aws-cdk"),
            cdk_assets_cli_version=pinned_node_tool("cdk-assets"),
            cross_account_keys=settings.crosses_accounts,
            enable_key_rotation=settings.crosses_accounts,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                    # The test suite loads a small real model: 3 GB is too little.
                    compute_type=codebuild.ComputeType.MEDIUM,
                )
            ),
        )
        self.stages: list[EnvironmentStage] = []
        for env in settings.stages:
            runner = self._runner_role(env)
            # Written out, not runner.role_arn: a token cannot cross into the stage.
            runner_arn = role_arn(settings.account, settings.region, smoke_runner_role_name(env))
            stage = EnvironmentStage(
                self, env.name, config=env, pipeline=settings, runner_role_arn=runner_arn
            )
            pre: list[pipelines.Step] = []
            if env.protected:
                pre.append(
                    pipelines.ManualApprovalStep(
                        f"{APPROVAL_STEP_PREFIX}{env.name}",
                        comment=(
                            f"Deploy {env.prefix} to {settings.stage_account(env)}/"
                            f"{settings.stage_region(env)}? The previous stages passed their "
                            "smoke tests."
                        ),
                    )
                )
            self.pipeline.add_stage(stage, pre=pre, post=[self._smoke_step(env, stage, runner)])
            self.stages.append(stage)
        self.pipeline.build_pipeline()
        self._acknowledge_pipeline_findings()

    def _runner_role(self, env: EnvironmentConfig) -> iam.Role:
        role = iam.Role(
            self,
            f"SmokeRunner-{env.name}",
            role_name=smoke_runner_role_name(env),
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description=f"CodeBuild smoke test of {env.prefix}; may only assume its smoke role",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeEnvironmentSmokeRole",
                actions=["sts:AssumeRole"],
                resources=[self._smoke_role_arn(env)],
            )
        )
        return role

    def _smoke_step(
        self, env: EnvironmentConfig, stage: EnvironmentStage, runner: iam.Role
    ) -> pipelines.CodeBuildStep:
        stack_args = " ".join(f"--stack {s.stack_name}" for s in stage.app_stacks)
        return pipelines.CodeBuildStep(
            f"{SMOKE_STEP_PREFIX}{env.name}",
            input=self.source,
            role=runner,
            install_commands=["python3 -m pip install --quiet -r requirements-smoke.txt"],
            commands=[
                f"python3 -m tools.smoke --env {env.name} --app {env.app_name} "
                f"--region {self.settings.stage_region(env)} {stack_args} "
                f"--assume-role {self._smoke_role_arn(env)} --as-client "
                f"--dimension {env.embedding_dimension} --field {env.semantic_field}"
            ],
            timeout=cdk.Duration.minutes(15),
        )

    def _smoke_role_arn(self, env: EnvironmentConfig) -> str:
        """Written out, not referenced: the role lives in another stage (often another account)."""
        return role_arn(
            self.settings.stage_account(env), self.settings.stage_region(env), smoke_role_name(env)
        )

    def _acknowledge_pipeline_findings(self) -> None:
        """Findings on constructs CDK Pipelines generates; each reason says why it is accepted.

        Every rule id names one resource pattern (logical ids are looked up, not
        guessed), so a new wildcard elsewhere in this stack still fails synth.
        """
        region, account = arn_env(self)
        inner = self.pipeline.pipeline
        bucket = inner.artifact_bucket
        bucket_id = self.get_logical_id(bucket.node.default_child)
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Pipeline artifact store written and read only by this pipeline's roles, whose calls "
            "CloudTrail records; server access logs would need a logs bucket of their own.",
        )
        for action in (
            "s3:Abort*",
            "s3:DeleteObject*",
            "s3:GetBucket*",
            "s3:GetObject*",
            "s3:List*",
        ):
            acknowledge(
                self,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK Pipelines grants each pipeline role read or read/write on the pipeline's own "
                "artifact bucket with these action groups; no other bucket is granted.",
            )
        acknowledge(
            self,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
            "Objects of this pipeline's own artifact bucket, where each action reads its input "
            "and writes its output.",
        )
        assets = self.pipeline.node.find_child("Assets")
        for project in self.node.find_all():
            if not isinstance(project, codebuild.CfnProject):
                continue
            if not self.settings.crosses_accounts:
                # With cross-account keys every project is given the artifact KMS key.
                acknowledge(
                    project.node.scope,  # the L2 project: acknowledgements cover children
                    "AwsSolutions-CB4",
                    "Single-account pipeline: build output goes only to the pipeline's artifact "
                    "bucket (S3-managed encryption); a customer-managed key is added as soon as "
                    "a stage is in another account.",
                )
            if project.node.path.startswith(assets.node.path + "/"):
                continue  # the shared asset role's wildcards are acknowledged below
            # Synth, self-mutation and smoke projects: their roles may write the logs and
            # test reports of their own project only.
            lid = self.get_logical_id(project)
            acknowledge(
                self,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:{region}:{account}:"
                f"log-group:/aws/codebuild/<{lid}>:*]",
                "Log streams of one CodeBuild project's own log group; stream names are "
                "generated per build.",
            )
            acknowledge(
                self,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:codebuild:{region}:{account}:"
                f"report-group/<{lid}>-*]",
                "Test report groups of one CodeBuild project, named after it by CodeBuild.",
            )
        file_role = assets.node.find_child("FileRole")
        for resource, reason in (
            ("*", "CDK Pipelines (aws-cdk-lib 2.275.0) grants its shared asset role "
                  "codebuild:StartBuild, StopBuild and BatchGetBuilds on every project; only "
                  "CodeBuild may assume the role, and its other grants are this pipeline's "
                  "logs, reports, artifacts and the bootstrap file-publishing roles."),
            (f"arn:<AWS::Partition>:logs:{region}:{account}:log-group:/aws/codebuild/*",
             "One role is shared by all asset-publishing projects, generated per asset; it may "
             "write CodeBuild logs in the pipeline account only."),
            (f"arn:<AWS::Partition>:codebuild:{region}:{account}:report-group/*",
             "One role is shared by all asset-publishing projects, generated per asset; it may "
             "write CodeBuild reports in the pipeline account only."),
        ):  # fmt: skip
            acknowledge(file_role, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        if self.settings.crosses_accounts:
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                acknowledge(
                    self,
                    f"AwsSolutions-IAM5[Action::{action}]",
                    "Encrypting pipeline artifacts with the pipeline's own KMS keys (created for "
                    "cross-account stages); CDK Pipelines grants these action groups on them only.",
                )
        self._acknowledge_cross_region_support(inner)
        self_mutation = self.pipeline.node.find_child("UpdatePipeline").node.find_child(
            "SelfMutation"
        )
        acknowledge(
            self_mutation,
            "AwsSolutions-IAM5[Resource::*]",
            "Self-mutation runs cdk deploy of this pipeline stack: it reads CloudFormation and "
            "its own assets, which CDK Pipelines grants without resource scoping.",
        )
        acknowledge(
            self_mutation,
            f"AwsSolutions-IAM5[Resource::arn:*:iam::{account}:role/*]",
            "Self-mutation assumes the CDK bootstrap deploy/lookup roles of the pipeline account "
            "(CDK Pipelines scopes it by the bootstrap role tag, not by name).",
        )

    def _acknowledge_cross_region_support(self, inner: codepipeline.Pipeline) -> None:
        """Stages in other regions get a replication bucket (in a support stack per region)."""
        for region, support in inner.cross_region_support.items():
            bucket_name = _generated_physical_name(support.replication_bucket)
            acknowledge(
                support.stack,
                "AwsSolutions-S1",
                f"CDK Pipelines' artifact replication bucket for {region}: only the pipeline's "
                "roles use it, and CloudTrail records their calls.",
            )
            acknowledge(
                inner.role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket_name}/*]",
                f"Objects of the pipeline's own artifact replication bucket in {region}.",
            )
            if self.settings.crosses_accounts:
                acknowledge(
                    inner.role,
                    "AwsSolutions-IAM5[Resource::*]",
                    "The replication bucket's KMS key lives in the support stack of another "
                    "region; CDK Pipelines cannot name its ARN across regions, only via its alias.",
                )


def _generated_physical_name(resource: cdk.Resource) -> str:
    """The name CDK gives a ``PhysicalName.GENERATE_IF_NEEDED`` resource referenced from
    another environment (aws-cdk-lib ``generatePhysicalName``).

    CDK fills it in only while writing templates, after cdk-nag acknowledgements
    must be in place, so it is derived here the same way. Should CDK change the
    scheme, the acknowledgement stops matching and synth fails loudly; it cannot
    silence anything else.
    """
    stack = cdk.Stack.of(resource)
    unique_id = cdk.Names.node_unique_id(resource.node)
    digest = hashlib.sha256(
        (stack.stack_name + unique_id + stack.region + stack.account).encode()
    ).hexdigest()
    return (stack.stack_name[:25] + unique_id[-24:] + digest[:12]).lower()


def build_pipeline(app: cdk.App, settings: PipelineConfig) -> PipelineStack:
    """What ``cdk synth -c pipeline=true`` builds: the pipeline stack and its stages."""
    return PipelineStack(
        app,
        settings.stack_name,
        settings=settings,
        description=(
            f"{settings.app_name}: CDK Pipelines pipeline deploying "
            f"{' -> '.join(e.name for e in settings.stages)} from "
            f"{settings.repository}@{settings.branch} (synth with -c {PIPELINE_FLAG}=true)"
        ),
    )
