"""Every log group of every environment is encrypted with its own stack's KMS key, and that
key lets only CloudWatch Logs of this account and region use it for log groups."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized


def _key_statement(key: dict[str, Any]) -> dict[str, Any]:
    (statement,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "CloudWatchLogsOfThisAccountAndRegion"
    ]
    return statement


def test_every_log_group_uses_its_stacks_logs_key(all_envs: list[Synthesized]) -> None:
    checked = 0
    for synthesized in all_envs:
        for stack, template in synthesized.templates.items():
            resources = template.get("Resources", {})
            for lid, res in resources.items():
                if res["Type"] != "AWS::Logs::LogGroup":
                    continue
                ref = res["Properties"].get("KmsKeyId")
                assert ref, f"{stack}/{lid}: log group without a KMS key"
                key_id = ref["Fn::GetAtt"][0]
                key = resources[key_id]
                assert key["Type"] == "AWS::KMS::Key"
                assert key["Properties"]["EnableKeyRotation"] is True
                # The key lives and dies with the logs it encrypts.
                assert key["DeletionPolicy"] == res["DeletionPolicy"], f"{stack}/{lid}"
                checked += 1
    # Four domain log groups, three ML setup groups, the endpoint's, the health
    # check's (monitoring stack): per environment.
    assert checked == 9 * len(all_envs)


def test_logs_key_is_usable_only_by_cloudwatch_logs_for_this_accounts_log_groups(
    all_envs: list[Synthesized],
) -> None:
    for synthesized in all_envs:
        for stack, template in synthesized.templates.items():
            keys = [
                r
                for lid, r in template.get("Resources", {}).items()
                if r["Type"] == "AWS::KMS::Key" and lid.startswith("LogsKey")
            ]
            for key in keys:
                statement = _key_statement(key)
                # cdk.json's environments are environment-agnostic: region and account
                # are the deploy target's, resolved by CloudFormation.
                assert statement["Principal"]["Service"] == {
                    "Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
                }, stack
                assert statement["Condition"] == {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": {
                            "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":logs:",
                                              {"Ref": "AWS::Region"}, ":",
                                              {"Ref": "AWS::AccountId"}, ":log-group:*"]]
                        }
                    }
                }, stack  # fmt: skip
                assert sorted(statement["Action"]) == sorted(
                    [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ]
                )
