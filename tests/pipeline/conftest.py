"""One synthesized pipeline for the whole session, in a shape that exercises everything.

The context is cdk.json's, with the environments placed the way a real
multi-account setup would: dev in the pipeline's own account and region, and
staging and prod together in a second account and another region. That one
synthesis shows cross-account and cross-region stages, and puts two
environments in one account and region for the name-collision check. A synth
costs seconds of two shared cores, so every test here reads this one.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from stacks.nag import enable_nag
from stacks.pipeline import PipelineStack, build_pipeline
from stacks.pipeline_config import PipelineConfig, load_pipeline_config

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_ACCOUNT, PIPELINE_REGION = "111111111111", "us-east-1"
WORKLOAD_ACCOUNT, WORKLOAD_REGION = "222222222222", "eu-west-1"


def pipeline_context() -> dict[str, Any]:
    ctx = copy.deepcopy(json.loads((ROOT / "cdk.json").read_text())["context"])
    ctx["pipeline_settings"].update(
        account=PIPELINE_ACCOUNT, region=PIPELINE_REGION, stages=["dev", "staging", "prod"]
    )
    for name in ("staging", "prod"):
        ctx["environments"][name].update(account=WORKLOAD_ACCOUNT, region=WORKLOAD_REGION)
    return ctx


@dataclass
class SynthesizedPipeline:
    settings: PipelineConfig
    stack: PipelineStack
    template: dict[str, Any]
    # environment name -> stack name -> template, from each stage's nested assembly
    stages: dict[str, dict[str, dict[str, Any]]]
    # top-level stacks other than the pipeline (cross-region support stacks)
    support: dict[str, dict[str, Any]]
    seconds: float

    def resources(self, type_: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
        tpl = self.template if template is None else template
        return {k: r for k, r in tpl["Resources"].items() if r["Type"] == type_}

    def codepipeline(self) -> dict[str, Any]:
        (pipeline,) = self.resources("AWS::CodePipeline::Pipeline").values()
        return pipeline["Properties"]

    def stage(self, name: str) -> dict[str, Any]:
        (stage,) = [s for s in self.codepipeline()["Stages"] if s["Name"] == name]
        return stage

    def project_of(self, action: dict[str, Any]) -> dict[str, Any]:
        ref = action["Configuration"]["ProjectName"]["Ref"]
        return self.template["Resources"][ref]["Properties"]


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedPipeline:
    start = time.perf_counter()
    ctx = pipeline_context()
    settings = load_pipeline_config(ctx)
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("pipeline")), context=ctx)
    stack = build_pipeline(app, settings)
    enable_nag(app)  # an unacknowledged finding fails this synth, and with it every test
    assembly = app.synth()
    seconds = time.perf_counter() - start
    top = {
        s.stack_name: json.loads(Path(s.template_full_path).read_text()) for s in assembly.stacks
    }
    stages: dict[str, dict[str, dict[str, Any]]] = {}
    for env, stage in zip(settings.stages, stack.stages, strict=True):
        nested = assembly.get_nested_assembly(stage.artifact_id)
        stages[env.name] = {
            s.stack_name: json.loads(Path(s.template_full_path).read_text()) for s in nested.stacks
        }
    template = top.pop(settings.stack_name)
    return SynthesizedPipeline(settings, stack, template, stages, top, seconds)
