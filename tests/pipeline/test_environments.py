"""Environments side by side: no shared physical names, and what `make destroy` leaves behind.

Both read the session's pipeline synthesis, where staging and prod share one
account and region (the case where names could collide) and dev, staging and
prod have their configured removal policies.
"""

from __future__ import annotations

from typing import Any

from tests.pipeline.conftest import SynthesizedPipeline

# Resources that hold data or evidence; their fate on destroy must follow the environment.
STATEFUL = (
    "AWS::OpenSearchService::Domain",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
)


# Names scoped to their parent resource, not to the account (an inline policy's name is
# unique per role), so equal values in two environments do not collide.
PARENT_SCOPED = {("AWS::IAM::Policy", "PolicyName")}
# Not names of a resource at all: which metric an alarm watches (AWS/ES, AWS/SageMaker
# metric names are the same for every domain; the dimensions tell environments apart).
NOT_PHYSICAL = {("AWS::CloudWatch::Alarm", "MetricName")}


def explicit_names(templates: dict[str, dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every literal name property: (resource type, property, value). Generated names (absent)
    and references (objects) cannot collide between stacks; literals can."""
    names = set()
    for template in templates.values():
        for resource in template.get("Resources", {}).values():
            for prop, value in (resource.get("Properties") or {}).items():
                if (resource["Type"], prop) in PARENT_SCOPED | NOT_PHYSICAL:
                    continue
                if resource["Type"].startswith("Custom::"):
                    continue  # names inside the environment's own domain (index, model, ...)
                if prop.endswith("Name") and isinstance(value, str):
                    names.add((resource["Type"], prop, value))
    return names


def test_two_environments_in_one_account_and_region_share_no_physical_name(
    pipeline: SynthesizedPipeline,
) -> None:
    staging, prod = (next(e for e in pipeline.settings.stages if e.name == n)
                     for n in ("staging", "prod"))  # fmt: skip
    where = {(pipeline.settings.stage_account(e), pipeline.settings.stage_region(e))
             for e in (staging, prod)}  # fmt: skip
    assert len(where) == 1, "the test needs both in one account and region"
    a, b = explicit_names(pipeline.stages["staging"]), explicit_names(pipeline.stages["prod"])
    # The check only means something if both environments do name things.
    kinds = {t for t, _, _ in a}
    assert {"AWS::OpenSearchService::Domain", "AWS::SageMaker::Endpoint", "AWS::IAM::Role"} <= kinds
    assert {v for _, _, v in a} & {v for _, _, v in b} == set()
    assert set(pipeline.stages["staging"]).isdisjoint(pipeline.stages["prod"])
    for env, names in (("staging", a), ("prod", b)):
        unscoped = {v for _, _, v in names if env not in v}
        assert not unscoped, f"{env}: names without the environment: {unscoped}"


def test_pipeline_side_names_are_per_environment(pipeline: SynthesizedPipeline) -> None:
    runners = sorted(v for t, p, v in explicit_names({"p": pipeline.template})
                     if t == "AWS::IAM::Role" and p == "RoleName")  # fmt: skip
    assert runners == sorted(f"{e.prefix}-smoke-runner" for e in pipeline.settings.stages)


def test_deletion_policies_follow_each_environments_removal_policy(
    pipeline: SynthesizedPipeline,
) -> None:
    """Extends tests/infra (dev and prod, three types) to every stage, every stateful type,
    and the rule that a `destroy` environment retains nothing at all."""
    for env in pipeline.settings.stages:
        expected = "Retain" if env.retain else "Delete"
        stateful_seen = set()
        for stack, template in pipeline.stages[env.name].items():
            for lid, resource in template["Resources"].items():
                policy = resource.get("DeletionPolicy")
                where = f"{env.name}: {stack}/{lid} ({resource['Type']})"
                if resource["Type"] in STATEFUL:
                    stateful_seen.add(resource["Type"])
                    assert policy == expected, where
                    assert resource.get("UpdateReplacePolicy") == expected, where
                if not env.retain:
                    # `make destroy` must remove everything the environment created.
                    assert policy in (None, "Delete"), where
        assert {"AWS::OpenSearchService::Domain", "AWS::Logs::LogGroup"} <= stateful_seen
    assert {e.name: e.retain for e in pipeline.settings.stages} == {
        "dev": False, "staging": False, "prod": True,
    }  # fmt: skip


def test_what_the_pipeline_itself_keeps_after_destroy(pipeline: SynthesizedPipeline) -> None:
    """docs/pipeline.md promises exactly this: destroying the pipeline (and its cross-region
    support stacks) keeps only the artifact buckets, CDK Pipelines' default; their KMS keys
    are deleted, so what the buckets hold becomes unreadable and they are emptied by hand."""
    for name, template in [(pipeline.settings.stack_name, pipeline.template),
                           *pipeline.support.items()]:  # fmt: skip
        kept = sorted(r["Type"] for r in template["Resources"].values()
                      if r.get("DeletionPolicy") == "Retain")  # fmt: skip
        assert kept == ["AWS::S3::Bucket"], name
    assert pipeline.support, "the cross-region case must be covered"
