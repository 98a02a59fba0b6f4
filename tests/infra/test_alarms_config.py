"""The alarm settings in cdk.json: validated at synth with one line, and honoured by the stacks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, load_config
from tests.infra.conftest import Synthesized, cdk_context, synth


def with_dev(**settings: Any) -> dict[str, Any]:
    ctx = copy.deepcopy(cdk_context())
    ctx["environments"]["dev"].update(settings)
    return ctx


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alarm_email": "not-an-address"},
         "environments.dev.alarm_email: 'not-an-address' is not allowed; expected an email"),
        ({"alarms_enabled": "yes"}, "environments.dev.alarms_enabled: 'yes' is not allowed"),
        ({"alarms_disabled": "ClusterStatusRed"},
         "environments.dev.alarms_disabled: 'ClusterStatusRed' is not allowed; expected a list"),
        ({"alarms_disabled": ["ClusterStatusPurple"]},
         "environments.dev.alarms_disabled: 'ClusterStatusPurple' is not an alarm"),
        ({"alarm_thresholds": {"ClusterStatusRed": 2}},
         "environments.dev.alarm_thresholds: 'ClusterStatusRed' has no tunable threshold"),
        ({"alarm_thresholds": {"CPUUtilization": 120}},
         "environments.dev.alarm_thresholds.CPUUtilization: 120 is not allowed; expected a "
         "number from 1 to 100 (percent)"),
        ({"alarm_thresholds": {"EndpointModelLatencyP99": 61}},
         "alarm_thresholds.EndpointModelLatencyP99: 61 is not allowed; expected a number from "
         "1 to 60 (seconds)"),
        ({"alarm_thresholds": {"CPUUtilization": True}},
         "alarm_thresholds.CPUUtilization: True is not allowed"),
        ({"alarm_thresholds": [70]}, "environments.dev.alarm_thresholds: [70] is not allowed"),
        ({"ml_health_check_minutes": 0},
         "environments.dev.ml_health_check_minutes: 0 is not allowed; expected an integer from "
         "1 to 60"),
    ],
)  # fmt: skip
def test_bad_alarm_settings_fail_with_one_line_naming_the_key(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(with_dev(**settings), "dev")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_when_nothing_is_configured() -> None:
    cfg = load_config(cdk_context(), "dev")
    assert cfg.alarms_enabled and cfg.alarm_email is None
    assert cfg.alarm_threshold("CPUUtilization") == 80
    assert cfg.alarm_threshold("EndpointModelLatencyP99") == 48
    assert cfg.ml_health_check_minutes == 5


@pytest.fixture(scope="module")
def tuned_and_silent(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Two extra environments in one app: one tuned, one with alarms off (cdk-nag runs)."""
    ctx = copy.deepcopy(cdk_context())
    dev = ctx["environments"]["dev"]
    ctx["environments"]["tuned"] = {
        **dev,
        "alarm_email": "ops@example.com",
        "alarms_disabled": ["ClusterStatusYellow", "MlHealthCheck"],
        "alarm_thresholds": {"CPUUtilization": 70, "EndpointModelLatencyP99": 30,
                             "FreeStorageSpace": 10, "EndpointCPUUtilization": 50},
    }  # fmt: skip
    ctx["environments"]["silent"] = {**dev, "alarms_enabled": False, "ml_health_check_minutes": 15}
    out: Path = tmp_path_factory.mktemp("cdk-alarm-config")
    return synth(out, ["tuned", "silent"], context=ctx)


def _alarms(tpl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["AlarmName"].split("-", 2)[2]: r["Properties"]
        for r in tpl["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_thresholds_disabled_alarms_and_email_are_honoured(tuned_and_silent: Synthesized) -> None:
    tpl = tuned_and_silent.templates["e5search-tuned-monitoring"]
    alarms = _alarms(tpl)
    assert "ClusterStatusYellow" not in alarms and "MlHealthCheck" not in alarms
    assert "ClusterStatusRed" in alarms
    assert alarms["CPUUtilization"]["Threshold"] == 70
    assert alarms["EndpointModelLatencyP99"]["Threshold"] == 30_000_000  # microseconds
    assert alarms["FreeStorageSpace"]["Threshold"] == 20 * 1024 * 0.10  # 10% of 20 GiB in MiB
    assert alarms["EndpointCPUUtilization"]["Threshold"] == 50 * 2  # ml.m5.large: 2 vCPUs
    # With MlHealthCheck disabled the check itself is not deployed either.
    types = [r["Type"] for r in tpl["Resources"].values()]
    assert "AWS::Lambda::Function" not in types and "AWS::Events::Rule" not in types
    (sub,) = [r["Properties"] for r in tpl["Resources"].values()
              if r["Type"] == "AWS::SNS::Subscription"]  # fmt: skip
    assert sub["Protocol"] == "email" and sub["Endpoint"] == "ops@example.com"


def test_alarms_enabled_false_creates_no_alarm_but_keeps_topic_and_dashboard(
    tuned_and_silent: Synthesized,
) -> None:
    tpl = tuned_and_silent.templates["e5search-silent-monitoring"]
    types = [r["Type"] for r in tpl["Resources"].values()]
    assert "AWS::CloudWatch::Alarm" not in types
    assert "AWS::Lambda::Function" not in types
    assert types.count("AWS::SNS::Topic") == 1
    assert types.count("AWS::CloudWatch::Dashboard") == 1
