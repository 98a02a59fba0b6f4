"""What every alarm group shares: per-environment enable/disable, and the SNS actions."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import EnvironmentConfig

Cmp = cloudwatch.ComparisonOperator
Missing = cloudwatch.TreatMissingData


class AlarmSet(Construct):
    """A group of alarms of one concern; ``alarms`` maps alarm id to alarm (created ones only)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.topic = topic
        self.alarms: dict[str, cloudwatch.Alarm] = {}

    def add(
        self,
        alarm_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        evaluation_periods: int,
        missing: cloudwatch.TreatMissingData,
        description: str,
        datapoints_to_alarm: int | None = None,
        construct_id: str | None = None,
    ) -> cloudwatch.Alarm | None:
        """Create the alarm unless the environment disabled it; it notifies on ALARM and OK."""
        if not self.config.alarm_enabled(alarm_id):
            return None
        name = construct_id or alarm_id
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=f"{self.config.prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=missing,
        )
        action = actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms[name] = alarm
        return alarm


def minutes(n: int) -> cdk.Duration:
    return cdk.Duration.minutes(n)
