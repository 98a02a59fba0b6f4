"""Alarms, their SNS topic and the dashboard of one environment (docs/operations.md)."""

from stacks.monitoring.stack import MonitoringStack

__all__ = ["MonitoringStack"]
