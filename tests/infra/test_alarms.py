"""Every alarm of every environment: metric, namespace, dimensions, statistic, period,
threshold, comparison, evaluation, missing-data treatment and SNS actions.

The expected values are written out here from their sources (AWS's recommended
OpenSearch alarms page, SageMaker's metric units, cdk.json), not read from
stacks/monitoring, so a wrong constant there fails a test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synthesized, cdk_context

ENVS = list(cdk_context()["environments"])
GE, LE, LT = "GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold", "LessThanThreshold"
ACCOUNT = {"Ref": "AWS::AccountId"}

# https://docs.aws.amazon.com/opensearch-service/latest/developerguide/cloudwatch-alarms.html
# alarm: (metric, statistic, period s, comparison, threshold, evaluation periods, missing data)
# Thresholds that depend on the environment are callables of its cdk.json settings.
SEARCH_EXPECTED: dict[str, tuple[Any, ...]] = {
    "ClusterStatusRed": ("ClusterStatus.red", "Maximum", 60, GE, 1, 1, "missing"),
    "ClusterStatusYellow": ("ClusterStatus.yellow", "Maximum", 60, GE, 1, 5, "missing"),
    # 25% of each node's storage, in MiB.
    "FreeStorageSpace": ("FreeStorageSpace", "Minimum", 60, LE,
                         lambda s: s["ebs_volume_size_gib"] * 1024 * 0.25, 1, "missing"),
    "ClusterIndexWritesBlocked": ("ClusterIndexWritesBlocked", "Maximum", 300, GE, 1, 1,
                                  "missing"),
    "Nodes": ("Nodes", "Minimum", 86400, LT,
              lambda s: s["data_node_count"] + s.get("dedicated_master_count", 0), 1, "missing"),
    "AutomatedSnapshotFailure": ("AutomatedSnapshotFailure", "Maximum", 60, GE, 1, 1,
                                 "notBreaching"),
    "CPUUtilization": ("CPUUtilization", "Maximum", 900, GE, 80, 3, "missing"),
    "JVMMemoryPressure": ("JVMMemoryPressure", "Maximum", 60, GE, 95, 3, "missing"),
    "OldGenJVMMemoryPressure": ("OldGenJVMMemoryPressure", "Maximum", 60, GE, 80, 3, "missing"),
    "ShardsActive": ("Shards.active", "Maximum", 60, GE, 30000, 1, "missing"),
    "ThreadpoolWriteQueue": ("ThreadpoolWriteQueue", "Average", 60, GE, 100, 1, "missing"),
    "ThreadpoolSearchQueue": ("ThreadpoolSearchQueue", "Average", 60, GE, 500, 1, "missing"),
    "KMSKeyError": ("KMSKeyError", "Maximum", 60, GE, 1, 1, "notBreaching"),
    "KMSKeyInaccessible": ("KMSKeyInaccessible", "Maximum", 60, GE, 1, 1, "notBreaching"),
}  # fmt: skip
MASTER_EXPECTED: dict[str, tuple[Any, ...]] = {
    "MasterReachableFromNode": ("MasterReachableFromNode", "Maximum", 86400, LT, 1, 1,
                                "missing"),
    "MasterCPUUtilization": ("MasterCPUUtilization", "Maximum", 900, GE, 50, 3, "missing"),
    "MasterJVMMemoryPressure": ("MasterJVMMemoryPressure", "Maximum", 60, GE, 95, 3, "missing"),
    "MasterOldGenJVMMemoryPressure": ("MasterOldGenJVMMemoryPressure", "Maximum", 60, GE, 80, 3,
                                      "missing"),
}  # fmt: skip
# vCPUs of the configured endpoint instance types (EC2/SageMaker instance specs).
VCPUS = {"ml.m5.large": 2, "ml.c6i.xlarge": 4}
ENDPOINT_EXPECTED: dict[str, tuple[Any, ...]] = {
    "EndpointInvocation5XXErrors": ("AWS/SageMaker", "Invocation5XXErrors", "Sum", 300, GE, 1,
                                    1, None, "notBreaching"),
    "EndpointInvocation4XXErrors": ("AWS/SageMaker", "Invocation4XXErrors", "Sum", 300, GE, 10,
                                    1, None, "notBreaching"),
    # ModelLatency is in microseconds: 48 s of the 60 s invocation limit.
    "EndpointModelLatencyP99": ("AWS/SageMaker", "ModelLatency", "p99", 300, GE, 48_000_000,
                                3, 2, "notBreaching"),
    # CPU is summed over cores: 80% of every vCPU.
    "EndpointCPUUtilization": ("/aws/sagemaker/Endpoints", "CPUUtilization", "Average", 300, GE,
                               lambda s: 80 * VCPUS[s["endpoint_instance_type"]], 3, None,
                               "missing"),
    "EndpointMemoryUtilization": ("/aws/sagemaker/Endpoints", "MemoryUtilization", "Average",
                                  300, GE, 85, 3, None, "missing"),
}  # fmt: skip


def settings(env: str) -> dict[str, Any]:
    return cdk_context()["environments"][env]


def monitoring(synth: Synthesized) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The monitoring template and its alarms keyed by name without the environment prefix."""
    tpl = synth.one("-monitoring")
    alarms = {}
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            props = res["Properties"]
            # "<app>-<env>-<alarm id>"
            alarms[props["AlarmName"].split("-", 2)[2]] = props
    return tpl, alarms


def topic_ref(tpl: dict[str, Any]) -> dict[str, str]:
    (lid,) = [k for k, v in tpl["Resources"].items() if v["Type"] == "AWS::SNS::Topic"]
    return {"Ref": lid}


def assert_notifies(props: dict[str, Any], tpl: dict[str, Any]) -> None:
    assert props["AlarmActions"] == [topic_ref(tpl)]
    assert props["OKActions"] == [topic_ref(tpl)]


def assert_metric_alarm(
    props: dict[str, Any],
    *,
    namespace: str,
    metric: str,
    dimensions: dict[str, Any],
    statistic: str,
    period: int,
    comparison: str,
    threshold: float,
    evaluation_periods: int,
    missing: str,
    datapoints: int | None = None,
) -> None:
    assert props["Namespace"] == namespace
    assert props["MetricName"] == metric
    assert {d["Name"]: d["Value"] for d in props["Dimensions"]} == dimensions
    if statistic.startswith("p"):
        assert props["ExtendedStatistic"] == statistic and "Statistic" not in props
    else:
        assert props["Statistic"] == statistic and "ExtendedStatistic" not in props
    assert props["Period"] == period
    assert props["ComparisonOperator"] == comparison
    assert props["Threshold"] == pytest.approx(threshold)
    assert props["EvaluationPeriods"] == evaluation_periods
    assert props.get("DatapointsToAlarm") == datapoints
    assert props["TreatMissingData"] == missing


@pytest.fixture(params=ENVS)
def env(request: pytest.FixtureRequest, synth_env) -> tuple[str, Synthesized]:  # type: ignore[no-untyped-def]
    return request.param, synth_env(request.param)


def test_search_domain_alarms_follow_the_aws_page(env: tuple[str, Synthesized]) -> None:
    name, synth = env
    tpl, alarms = monitoring(synth)
    s = settings(name)
    dims = {"DomainName": f"e5search-{name}-search", "ClientId": ACCOUNT}
    for alarm_id, (metric, stat, period, cmp, threshold, evals, missing) in SEARCH_EXPECTED.items():
        props = alarms[alarm_id]
        assert_metric_alarm(
            props, namespace="AWS/ES", metric=metric, dimensions=dims, statistic=stat,
            period=period, comparison=cmp,
            threshold=threshold(s) if callable(threshold) else threshold,
            evaluation_periods=evals, missing=missing,
        )  # fmt: skip
        assert_notifies(props, tpl)


def test_free_storage_threshold_is_a_quarter_of_the_configured_volume(
    synth_env,  # type: ignore[no-untyped-def]
) -> None:
    """dev has 20 GiB volumes, prod 100 GiB: 5120 and 25600 MiB, not the page's fixed 20480."""
    assert monitoring(synth_env("dev"))[1]["FreeStorageSpace"]["Threshold"] == 5120
    assert monitoring(synth_env("prod"))[1]["FreeStorageSpace"]["Threshold"] == 25600


def test_master_alarms_exist_only_where_dedicated_masters_are_configured(
    env: tuple[str, Synthesized],
) -> None:
    name, synth = env
    tpl, alarms = monitoring(synth)
    dims = {"DomainName": f"e5search-{name}-search", "ClientId": ACCOUNT}
    if not settings(name).get("dedicated_master_count"):
        assert not set(MASTER_EXPECTED) & set(alarms)
        return
    for alarm_id, (metric, stat, period, cmp, threshold, evals, missing) in MASTER_EXPECTED.items():
        assert_metric_alarm(
            alarms[alarm_id], namespace="AWS/ES", metric=metric, dimensions=dims,
            statistic=stat, period=period, comparison=cmp, threshold=threshold,
            evaluation_periods=evals, missing=missing,
        )  # fmt: skip
        assert_notifies(alarms[alarm_id], tpl)


def test_prod_has_the_master_alarms_and_dev_does_not(synth_env) -> None:  # type: ignore[no-untyped-def]
    """The conditional above is exercised both ways by the configured environments."""
    assert set(MASTER_EXPECTED) <= set(monitoring(synth_env("prod"))[1])
    assert not set(MASTER_EXPECTED) & set(monitoring(synth_env("dev"))[1])


def test_endpoint_alarms(env: tuple[str, Synthesized]) -> None:
    name, synth = env
    tpl, alarms = monitoring(synth)
    s = settings(name)
    dims = {"EndpointName": f"e5search-{name}-e5", "VariantName": "AllTraffic"}
    for alarm_id, expected in ENDPOINT_EXPECTED.items():
        namespace, metric, stat, period, cmp, threshold, evals, datapoints, missing = expected
        assert_metric_alarm(
            alarms[alarm_id], namespace=namespace, metric=metric, dimensions=dims,
            statistic=stat, period=period, comparison=cmp,
            threshold=threshold(s) if callable(threshold) else threshold,
            evaluation_periods=evals, datapoints=datapoints, missing=missing,
        )  # fmt: skip
        assert_notifies(alarms[alarm_id], tpl)


def test_at_max_capacity_divides_invocations_by_invocations_per_instance(
    env: tuple[str, Synthesized],
) -> None:
    name, synth = env
    tpl, alarms = monitoring(synth)
    s = settings(name)
    props = alarms["EndpointAtMaxCapacity"]
    metrics = {m["Id"]: m for m in props["Metrics"]}
    (expr,) = [m for m in props["Metrics"] if "Expression" in m]
    assert expr["Expression"] == "invocations / perInstance" and expr["ReturnData"] is True
    dims = [{"Name": "EndpointName", "Value": f"e5search-{name}-e5"},
            {"Name": "VariantName", "Value": "AllTraffic"}]  # fmt: skip
    for metric_id, metric_name in (("invocations", "Invocations"),
                                   ("perInstance", "InvocationsPerInstance")):  # fmt: skip
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"] == {"Namespace": "AWS/SageMaker", "MetricName": metric_name,
                                  "Dimensions": dims}  # fmt: skip
        assert stat["Stat"] == "Sum" and stat["Period"] == 300
        assert metrics[metric_id]["ReturnData"] is False
    assert props["Threshold"] == s["endpoint_max_capacity"] - 0.5
    assert props["ComparisonOperator"] == GE
    assert props["EvaluationPeriods"] == 3
    assert props["TreatMissingData"] == "notBreaching"
    assert_notifies(props, tpl)


def test_ml_setup_handler_errors_alarm(env: tuple[str, Synthesized]) -> None:
    name, synth = env
    tpl, alarms = monitoring(synth)
    for handler in ("OnEvent", "IsComplete"):
        props = alarms[f"MlSetupErrors{handler}"]
        (dim,) = props["Dimensions"]
        assert dim["Name"] == "FunctionName"
        # The function's name, imported from the ML setup stack.
        export = dim["Value"]["Fn::ImportValue"]
        assert export.startswith(f"e5search-{name}-ml-setup:ExportsOutputRef{handler}")
        assert_metric_alarm(
            props, namespace="AWS/Lambda", metric="Errors",
            dimensions={"FunctionName": dim["Value"]}, statistic="Sum", period=300,
            comparison=GE, threshold=1, evaluation_periods=1, missing="notBreaching",
        )  # fmt: skip
        assert_notifies(props, tpl)


def test_ml_health_alarm_treats_a_silent_check_as_failing(env: tuple[str, Synthesized]) -> None:
    name, synth = env
    tpl, alarms = monitoring(synth)
    props = alarms["MlHealthCheck"]
    assert_metric_alarm(
        props, namespace="E5Search/MlHealth", metric="Healthy", dimensions={"Environment": name},
        statistic="Minimum", period=300, comparison=LT, threshold=1, evaluation_periods=3,
        datapoints=2, missing="breaching",
    )  # fmt: skip
    assert_notifies(props, tpl)
    (rule,) = [r["Properties"] for r in tpl["Resources"].values()
               if r["Type"] == "AWS::Events::Rule"]  # fmt: skip
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["State"] == "ENABLED"


def test_no_unexpected_alarms(env: tuple[str, Synthesized]) -> None:
    """Every alarm in the template is one this file checks field by field."""
    name, synth = env
    _, alarms = monitoring(synth)
    expected = set(SEARCH_EXPECTED) | set(ENDPOINT_EXPECTED) | {
        "EndpointAtMaxCapacity", "MlSetupErrorsOnEvent", "MlSetupErrorsIsComplete",
        "MlHealthCheck",
    }  # fmt: skip
    if settings(name).get("dedicated_master_count"):
        expected |= set(MASTER_EXPECTED)
    assert set(alarms) == expected


def test_topic_is_encrypted_tls_only_and_cloudwatch_may_use_its_key(
    env: tuple[str, Synthesized],
) -> None:
    _, synth = env
    tpl = synth.one("-monitoring")
    res = tpl["Resources"]
    (topic,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::SNS::Topic"]
    # The topic's own key (the stack's LogsKey encrypts only its log group).
    (key_lid,) = [
        k for k, r in res.items() if r["Type"] == "AWS::KMS::Key" and not k.startswith("LogsKey")
    ]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_lid, "Arn"]}
    key = res[key_lid]["Properties"]
    assert key["EnableKeyRotation"] is True
    cw = [s for s in key["KeyPolicy"]["Statement"]
          if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]  # fmt: skip
    assert cw and set(cw[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (policy,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # No email address is configured in cdk.json, so no subscription.
    assert not [r for r in res.values() if r["Type"] == "AWS::SNS::Subscription"]


def test_health_check_role_is_least_privilege(env: tuple[str, Synthesized]) -> None:
    name, synth = env
    tpl = synth.one("-monitoring")
    res = tpl["Resources"]
    (policy,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::IAM::Policy"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements) == {"OwnLogs", "AssumeSearchClientRole", "PublishHealthMetrics"}
    assert statements["AssumeSearchClientRole"]["Action"] == "sts:AssumeRole"
    assert statements["AssumeSearchClientRole"]["Resource"]["Fn::ImportValue"].startswith(
        f"e5search-{name}-search:ExportsOutputFnGetAttClientRole"
    )
    assert statements["PublishHealthMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "E5Search/MlHealth"}
    }
    assert not [r for r in res.values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    (role,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::IAM::Role"]
    assert "ManagedPolicyArns" not in role
    (function,) = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::Function"]
    assert function["Handler"] == "ml_health.handler.handler"
    session = function["Environment"]["Variables"]["SESSION_POLICY"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "<token>" for part in session)
    document = json.loads(text)
    actions = {(s["Action"], s["Resource"]) for s in document["Statement"]}
    base = f"arn:<token>:es:<token>:<token>:domain/e5search-{name}-search/_plugins/_ml/models/"
    assert actions == {
        ("es:ESHttpGet", f"{base}<token>"),
        ("es:ESHttpPost", f"{base}<token>/_predict"),
    }
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


def test_one_dashboard_per_environment_with_the_loader_metrics(
    env: tuple[str, Synthesized],
) -> None:
    name, synth = env
    tpl = synth.one("-monitoring")
    (dash,) = [r["Properties"] for r in tpl["Resources"].values()
               if r["Type"] == "AWS::CloudWatch::Dashboard"]  # fmt: skip
    assert dash["DashboardName"] == f"e5search-{name}-operations"
    body = json.dumps(dash["DashboardBody"])
    for needle in ('\\"E5Search/Ingest\\",\\"DocumentsIndexed\\"',
                   '\\"E5Search/Ingest\\",\\"DocumentsFailed\\"',
                   '\\"E5Search/MlHealth\\",\\"Healthy\\"',
                   '\\"AWS/ES\\",\\"ClusterStatus.red\\"',
                   '\\"AWS/SageMaker\\",\\"ModelLatency\\"'):  # fmt: skip
        assert needle in body, needle


def test_monitoring_is_deployed_after_the_stacks_it_watches(env: tuple[str, Synthesized]) -> None:
    name, synth = env
    deps = synth.dependencies[f"e5search-{name}-monitoring"]
    assert f"e5search-{name}-ml-setup" in deps


def _asset_dir(synth: Synthesized, function: dict[str, Any]) -> Path:
    key = function["Properties"]["Code"]["S3Key"]
    return Path(synth.assembly.directory) / f"asset.{key.removesuffix('.zip')}"


def test_each_python_function_ships_its_own_handler_package(dev: Synthesized) -> None:
    """The health check and the setup handlers bundle different packages of lambdas/:
    each asset must hold its handler's package and not the other's (a shared source
    hash once made both functions ship the ML setup bundle)."""
    functions = dev.resources("AWS::Lambda::Function")
    (health,) = [f for f in functions.values()
                 if f["Properties"].get("Handler") == "ml_health.handler.handler"]  # fmt: skip
    setup = [
        f for f in functions.values()
        if str(f["Properties"].get("Handler", "")).startswith("ml_setup.handler.")
    ]  # fmt: skip
    assert setup
    health_dir = _asset_dir(dev, health)
    assert (health_dir / "ml_health" / "handler.py").is_file()
    assert not (health_dir / "ml_setup").exists()
    for function in setup:
        setup_dir = _asset_dir(dev, function)
        assert (setup_dir / "ml_setup" / "handler.py").is_file()
        assert not (setup_dir / "ml_health").exists()
