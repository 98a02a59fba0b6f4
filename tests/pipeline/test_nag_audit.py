"""The pipeline's cdk-nag acknowledgements are neither missing nor stale.

The session synthesis (conftest) already fails on any unacknowledged finding.
This audit synthesizes once more with acknowledgements only recorded, so nag
reports every finding, and checks that each acknowledgement made for the
pipeline (its own stack, the cross-region support stacks and the smoke stacks)
silences a finding that really exists. It is the same audit as
tests/infra/test_quality_gates.py applies to the environment stacks.
"""

from __future__ import annotations

import re
from pathlib import Path

import aws_cdk as cdk
import pytest

import stacks.nag
from stacks.nag import enable_nag
from stacks.pipeline import build_pipeline
from stacks.pipeline_config import load_pipeline_config
from tests.pipeline.conftest import pipeline_context

FINDING = re.compile(r"\n   (\S+)/Resource \S+\n   Acknowledge with 'AwsSolutions::([^']+)'")


def _pipeline_owned(path: str, stage_names: list[str], pipeline_id: str) -> bool:
    """Acknowledged by stacks/pipeline.py: not inside an environment's own stacks."""
    in_stage = any(path.startswith(f"{pipeline_id}/{name}/") for name in stage_names)
    return not in_stage or re.search(r"/[a-z0-9]+-[a-z0-9]+-smoke(/|$)", path) is not None


def test_every_pipeline_acknowledgement_matches_a_real_finding(tmp_path: Path) -> None:
    ctx = pipeline_context()
    settings = load_pipeline_config(ctx)
    with (
        stacks.nag.acknowledgements_recorded() as acked,
        pytest.raises(Exception, match="ValidationFailed") as err,
    ):
        app = cdk.App(outdir=str(tmp_path), context=ctx)
        build_pipeline(app, settings)
        enable_nag(app)
        app.synth()
    found = set(FINDING.findall(str(err.value)))
    acknowledged = {tuple(a.split(" ", 1)) for a in acked}
    uncovered = {
        (path, rule) for path, rule in found
        if not any(rule == r and (path == p or path.startswith(p + "/")) for p, r in acknowledged)
    }  # fmt: skip
    assert uncovered == set()
    names = [e.name for e in settings.stages]
    ours = {(p, r) for p, r in acknowledged if _pipeline_owned(p, names, settings.stack_name)}
    assert any("/SmokeRole" in p for p, _ in ours) and any("/Pipeline/" in p for p, _ in ours)
    stale = {
        (p, r) for p, r in ours
        if not any(rule == r and (path == p or path.startswith(p + "/")) for path, rule in found)
    }  # fmt: skip
    assert stale == set()
