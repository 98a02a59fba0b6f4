"""Map the configured number of days onto CloudWatch Logs' retention enum.

jsii enums carry member names ("TWO_WEEKS"), not the day counts that
cdk.json speaks in, so the translation lives here once.
"""

from __future__ import annotations

from aws_cdk import aws_logs as logs

_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
}  # fmt: skip

ALLOWED_DAYS = tuple(_DAYS)


def retention_days(days: int) -> logs.RetentionDays:
    """Config validation restricts ``days`` to ALLOWED_DAYS, so the lookup cannot miss."""
    return logs.RetentionDays[_DAYS[days]]
