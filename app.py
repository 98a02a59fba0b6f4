#!/usr/bin/env python3
"""CDK entry point: the stacks of one environment (`-c env=NAME`, default from cdk.json),
or, with `-c pipeline=true`, the CDK Pipelines pipeline that deploys every environment."""

from __future__ import annotations

import sys

import aws_cdk as cdk

from stacks.config import ConfigError, load_config
from stacks.environment import build_environment
from stacks.nag import enable_nag
from stacks.pipeline import build_pipeline
from stacks.pipeline_config import (
    PIPELINE_FLAG,
    SETTINGS_KEY,
    load_pipeline_config,
    pipeline_requested,
)


def main() -> None:
    app = cdk.App()
    context = {
        key: app.node.try_get_context(key)
        for key in ("app_name", "default_env", "environments", SETTINGS_KEY)
    }
    try:
        if pipeline_requested(app.node.try_get_context(PIPELINE_FLAG)):
            build_pipeline(app, load_pipeline_config(context))
        else:
            build_environment(app, load_config(context, app.node.try_get_context("env")))
    except ConfigError as err:
        # One line naming the key, the bad value and what is allowed; no stack trace.
        print(f"Configuration error: {err}", file=sys.stderr)
        sys.exit(2)
    enable_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
