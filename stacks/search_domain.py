"""The OpenSearch Service domain and the IAM identities that use it.

Security choices, all on by default: fine-grained access control with an IAM
role as master user (no internal user, no password), encryption at rest,
node-to-node encryption, HTTPS only with TLS 1.2+ and perfect forward secrecy,
and a domain access policy that names only the roles this stack creates (master,
setup, search client).

The roles live here, beside the domain, because the domain's access policy
must name them and the connector role's trust policy must name the domain;
keeping both ends in one stack avoids a cycle between stacks. The endpoint ARN
the connector role may invoke is built from the endpoint's configured name,
so this stack never waits for the endpoint stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.log_retention import encrypted_log_group, retention_days
from stacks.nag import acknowledge, arn_env

_ENGINE_VERSIONS = {
    "3.5": opensearch.EngineVersion.OPENSEARCH_3_5,
    "3.7": opensearch.EngineVersion.OPENSEARCH_3_7,
}


class SearchDomainStack(cdk.Stack):
    """OpenSearch domain, its logs, and the master, setup, search-client and connector roles."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        removal = cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY
        self.domain_arn = self.format_arn(
            service="es", resource="domain", resource_name=config.domain_name
        )
        endpoint_arn = self.format_arn(
            service="sagemaker", resource="endpoint", resource_name=config.endpoint_name.lower()
        )

        self.setup_role = iam.Role(
            self,
            "SetupRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=(
                f"Custom resources of {config.prefix}: create the ML Commons connector, "
                "model and semantic index"
            ),
        )
        self.master_role = iam.Role(
            self,
            "MasterRole",
            assumed_by=iam.CompositePrincipal(
                iam.AccountRootPrincipal(), iam.ArnPrincipal(self.setup_role.role_arn)
            ),
            description=(
                f"Fine-grained access control master user of {config.domain_name}; assumable by "
                "identities of this account whose IAM policies allow it, and by the setup role "
                "to write role mappings"
            ),
            max_session_duration=cdk.Duration.hours(1),
        )
        # What applications (and the pipeline's smoke test) act as: inside
        # OpenSearch it is mapped only to the <app>-<env>-search-client role
        # (documents of this app's index, ML predict), so day-to-day search
        # never needs the master role. No IAM path: FGAC matches the backend
        # role against the path-less ARN of the assumed-role session.
        self.client_role = iam.Role(
            self,
            "ClientRole",
            assumed_by=iam.AccountRootPrincipal(),
            description=(
                f"Search client of {config.prefix}: index, search and delete documents of its "
                "semantic index; assumable by identities of this account whose IAM policies "
                "allow it"
            ),
            max_session_duration=cdk.Duration.hours(1),
        )
        self.client_role.add_to_policy(
            iam.PolicyStatement(
                sid="SearchThisDomain",
                # No ESHttpPatch: PATCH is only used by the security REST API.
                actions=["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut",
                         "es:ESHttpDelete"],
                resources=[self.domain_arn, f"{self.domain_arn}/*"],
            )
        )  # fmt: skip
        self.connector_role = iam.Role(
            self,
            "ConnectorRole",
            assumed_by=iam.ServicePrincipal(
                "opensearchservice.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {"aws:SourceArn": self.domain_arn},
                },
            ),
            description=(
                f"Assumed by {config.domain_name} to invoke the {config.endpoint_name} endpoint"
            ),
        )
        self.connector_role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeEmbeddingEndpoint",
                actions=["sagemaker:InvokeEndpoint"],
                resources=[endpoint_arn],
            )
        )

        # The setup role: HTTP on this domain, PassRole of the connector role
        # to OpenSearch only, and AssumeRole of the master role (to write the
        # security-plugin role mappings, nothing else).
        self.setup_role.add_to_policy(
            iam.PolicyStatement(
                sid="CallThisDomain",
                actions=["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut",
                         "es:ESHttpPatch", "es:ESHttpDelete"],
                resources=[self.domain_arn, f"{self.domain_arn}/*"],
            )
        )  # fmt: skip
        self.setup_role.add_to_policy(
            iam.PolicyStatement(
                sid="PassConnectorRole",
                actions=["iam:PassRole"],
                resources=[self.connector_role.role_arn],
                conditions={
                    "StringEquals": {"iam:PassedToService": "opensearchservice.amazonaws.com"}
                },
            )
        )
        self.setup_role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeMasterRoleForRoleMappings",
                actions=["sts:AssumeRole"],
                resources=[self.master_role.role_arn],
            )
        )
        region, account = arn_env(self)
        acknowledge(
            self.setup_role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:es:{region}:{account}:"
            f"domain/{config.domain_name}/*]",
            "The ML Commons, index and security REST paths of this one domain; the domain is "
            "named exactly.",
        )
        acknowledge(
            self.client_role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:es:{region}:{account}:"
            f"domain/{config.domain_name}/*]",
            "The REST paths of this one domain (documents, search, predict); what the client may "
            "do inside it is limited by its fine-grained access control role.",
        )

        log_groups = {
            kind: encrypted_log_group(
                self,
                f"{kind}Logs",
                retention=retention_days(config.log_retention_days),
                removal_policy=removal,
            )
            for kind in ("Application", "SlowSearch", "SlowIndex", "Audit")
        }
        # Our own resource policy (instead of the L2's custom-resource one),
        # scoped to these four groups and to this domain as the source.
        logs_policy = logs.ResourcePolicy(
            self,
            "DomainLogsPolicy",
            policy_statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    resources=[g.log_group_arn for g in log_groups.values()],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": self.account},
                        "ArnLike": {"aws:SourceArn": self.domain_arn},
                    },
                )
            ],
        )

        zone_awareness = (
            opensearch.ZoneAwarenessConfig(
                enabled=True, availability_zone_count=config.availability_zones
            )
            if config.availability_zones > 1
            else opensearch.ZoneAwarenessConfig(enabled=False)
        )
        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=config.domain_name,
            version=_ENGINE_VERSIONS[config.engine_version],
            capacity=opensearch.CapacityConfig(
                data_node_instance_type=config.data_node_instance_type,
                data_nodes=config.data_node_count,
                master_node_instance_type=(
                    config.dedicated_master_instance_type if config.dedicated_master_count else None
                ),
                master_nodes=config.dedicated_master_count or None,
                multi_az_with_standby_enabled=False,
            ),
            zone_awareness=zone_awareness,
            ebs=_ebs_options(config),
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_arn=self.master_role.role_arn
            ),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2_PFS,
            logging=opensearch.LoggingOptions(
                app_log_enabled=True,
                app_log_group=log_groups["Application"],
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
                audit_log_enabled=True,
                audit_log_group=log_groups["Audit"],
            ),
            suppress_logs_resource_policy=True,
            enable_auto_software_update=True,
            off_peak_window_enabled=True,
            removal_policy=removal,
        )
        cfn_domain = self.domain.node.default_child
        assert isinstance(cfn_domain, opensearch.CfnDomain)
        # Set on the L1 so no custom resource (and its Lambda) is needed: the
        # domain name is fixed, so the policy can name the domain's own ARN.
        cfn_domain.access_policies = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyThisAppsRoles",
                    "Effect": "Allow",
                    "Principal": {
                        "AWS": [
                            self.master_role.role_arn,
                            self.setup_role.role_arn,
                            self.client_role.role_arn,
                        ]
                    },
                    "Action": "es:ESHttp*",
                    "Resource": f"{self.domain_arn}/*",
                }
            ],
        }
        # The service checks at creation that it may write to the log groups.
        self.domain.node.add_dependency(logs_policy)
        self._acknowledge_domain_findings()

        cdk.CfnOutput(self, "DomainEndpoint", value=self.domain.domain_endpoint)
        cdk.CfnOutput(self, "DomainName", value=config.domain_name)
        cdk.CfnOutput(
            self,
            "MasterRoleArn",
            value=self.master_role.role_arn,
            description="Assume this role to administer the domain (Dashboards, role mappings)",
        )
        cdk.CfnOutput(
            self,
            "SearchClientRoleArn",
            value=self.client_role.role_arn,
            description=(
                "Assume this role to index and search documents (least privilege; not the master)"
            ),
        )

    def _acknowledge_domain_findings(self) -> None:
        config = self.config
        acknowledge(
            self.domain,
            "AwsSolutions-OS1",
            "Public HTTPS endpoint by design: every request must be SigV4-signed by one of the "
            "three roles the access policy names and pass fine-grained access control; a VPC would "
            "force the custom-resource Lambda and every client into it.",
        )
        acknowledge(
            self.domain,
            "AwsSolutions-OS3",
            "Access is limited by IAM principal (three named roles) rather than source IP: clients "
            "are Lambda functions and pipelines without stable addresses.",
        )
        if not config.dedicated_master_count:
            acknowledge(
                self.domain,
                "AwsSolutions-OS4",
                f"Environment {config.name} is configured without dedicated masters "
                "(dedicated_master_count 0) to keep a small cluster cheap; prod uses 3.",
            )
        if config.availability_zones < 2:
            acknowledge(
                self.domain,
                "AwsSolutions-OS7",
                f"Environment {config.name} is configured for one availability zone "
                "(availability_zones 1) to keep it cheap; prod uses 3.",
            )


def _ebs_options(config: EnvironmentConfig) -> opensearch.EbsOptions:
    """No EBS on instance-store data nodes (config validation refuses ebs_* keys there);
    otherwise the configured volume, with provisioned IOPS for io1 only."""
    if config.data_nodes_use_instance_store:
        return opensearch.EbsOptions(enabled=False)
    return opensearch.EbsOptions(
        volume_size=config.ebs_volume_size_gib,
        volume_type={
            "gp3": ec2.EbsDeviceVolumeType.GP3,
            "gp2": ec2.EbsDeviceVolumeType.GP2,
            "io1": ec2.EbsDeviceVolumeType.IO1,
        }[config.ebs_volume_type],
        iops=config.ebs_iops if config.ebs_volume_type == "io1" else None,
    )
