"""Typed, validated settings of the CDK Pipelines pipeline (``context.pipeline_settings``).

The pipeline is opt-in (``-c pipeline=true``): the default ``cdk synth`` stays
the stacks of one environment, with no credentials and no connection needed.
The flag and the settings block have different keys on purpose: a ``-c`` value
on the command line replaces a cdk.json context key of the same name, so a
flag called ``pipeline`` would wipe out a block called ``pipeline``.

Validation happens once, before any construct exists, with the same one-line
error style as the environment settings (key, bad value, what is allowed).
Every stage's environment is validated here too, so a typo in
``environments.prod`` fails the pipeline synth instead of the prod deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stacks.config import (
    ACCOUNT_RE,
    AWS_REGION_RE,
    ConfigError,
    EnvironmentConfig,
    load_config,
)

PIPELINE_FLAG = "pipeline"
SETTINGS_KEY = "pipeline_settings"
# Both the older CodeStar Connections and the renamed CodeConnections ARNs work
# with CodePipeline's CodeStarSourceConnection action.
# Applied with fullmatch and ASCII digits only, like the environment patterns.
CONNECTION_ARN_RE = re.compile(
    r"arn:aws(-[a-z]+)*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:"
    r"connection/[0-9a-f-]{36}"
)
REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
BRANCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,199}")
_KEYS = {
    "connection_arn": "a CodeConnections ARN (arn:aws:codeconnections:<region>:<account>:"
    "connection/<uuid>)",
    "repository": "owner/name of the source repository",
    "branch": "the branch the pipeline follows, such as main",
    "account": "the 12-digit account the pipeline lives in",
    "region": "the region the pipeline lives in, such as us-east-1",
    "stages": "a non-empty list of environment names, in deployment order",
}


@dataclass(frozen=True)
class PipelineConfig:
    """Where the pipeline lives, what it follows, and the environments it deploys in order."""

    app_name: str
    connection_arn: str
    repository: str
    branch: str
    account: str
    region: str
    stages: tuple[EnvironmentConfig, ...]

    @property
    def stack_name(self) -> str:
        return f"{self.app_name}-pipeline"

    def stage_account(self, env: EnvironmentConfig) -> str:
        """An environment without an account deploys into the pipeline's account."""
        return env.account or self.account

    def stage_region(self, env: EnvironmentConfig) -> str:
        return env.region or self.region

    @property
    def crosses_accounts(self) -> bool:
        """True when any stage deploys outside the pipeline's account (needs KMS-encrypted
        artifacts that the other account may decrypt: ``cross_account_keys``)."""
        return any(self.stage_account(env) != self.account for env in self.stages)


def _fail(key: str, value: Any) -> ConfigError:
    return ConfigError(
        f"cdk.json context.{SETTINGS_KEY}.{key}: {value!r} is not allowed; expected {_KEYS[key]}"
    )


def pipeline_requested(flag: Any) -> bool:
    """``-c pipeline=true`` arrives as the string "true"; cdk.json could hold a boolean."""
    return flag is True or (isinstance(flag, str) and flag.strip().lower() in ("true", "1", "yes"))


def load_pipeline_config(context: dict[str, Any]) -> PipelineConfig:
    """Validate ``context.pipeline_settings`` and every environment it lists."""
    raw = context.get(SETTINGS_KEY)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"cdk.json context.{SETTINGS_KEY}: missing; expected an object with keys "
            f"{', '.join(_KEYS)}"
        )
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"cdk.json context.{SETTINGS_KEY}: unknown key {unknown[0]!r}; allowed keys are "
            f"{', '.join(_KEYS)}"
        )
    for key in _KEYS:
        if key not in raw:
            raise ConfigError(
                f"cdk.json context.{SETTINGS_KEY}.{key}: missing; expected {_KEYS[key]}"
            )
    checks = {
        "connection_arn": CONNECTION_ARN_RE,
        "repository": REPOSITORY_RE,
        "branch": BRANCH_RE,
        "account": ACCOUNT_RE,
        "region": AWS_REGION_RE,
    }
    for key, pattern in checks.items():
        if not isinstance(raw[key], str) or not pattern.fullmatch(raw[key]):
            raise _fail(key, raw[key])
    names = raw["stages"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _fail("stages", names)
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ConfigError(
            f"cdk.json context.{SETTINGS_KEY}.stages: {duplicate!r} is listed twice; each "
            "environment deploys once per pipeline run"
        )
    configured = context.get("environments") or {}
    for name in names:
        if name not in configured:
            raise ConfigError(
                f"cdk.json context.{SETTINGS_KEY}.stages: no environment {name!r}; configured "
                f"environments are {', '.join(configured)}"
            )
    return PipelineConfig(
        app_name=context.get("app_name", "e5search"),
        connection_arn=raw["connection_arn"],
        repository=raw["repository"],
        branch=raw["branch"],
        account=raw["account"],
        region=raw["region"],
        stages=tuple(load_config(context, name) for name in names),
    )


__all__ = [
    "PIPELINE_FLAG",
    "SETTINGS_KEY",
    "PipelineConfig",
    "load_pipeline_config",
    "pipeline_requested",
]
