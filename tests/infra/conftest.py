"""Synthesize environments in-process once per test session.

A synth costs seconds (jsii starts Node), so every test that reads a template
shares one synthesized assembly per environment instead of building its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from stacks.config import load_config
from stacks.environment import build_environment
from stacks.nag import enable_nag

ROOT = Path(__file__).resolve().parents[2]


def cdk_context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synthesized:
    """The templates of one synthesized app, keyed by stack name."""

    assembly: cdk.cx_api.CloudAssembly
    templates: dict[str, dict[str, Any]]
    template_files: dict[str, Path]
    dependencies: dict[str, list[str]]

    def one(self, suffix: str) -> dict[str, Any]:
        (name,) = [n for n in self.templates if n.endswith(suffix)]
        return self.templates[name]

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {
            f"{stack}/{lid}": res
            for stack, tpl in self.templates.items()
            for lid, res in tpl.get("Resources", {}).items()
            if res["Type"] == type_
        }


def synth(
    outdir: Path,
    env_names: list[str],
    context: dict[str, Any] | None = None,
    nag: bool = True,
    patch: Callable[[], None] | None = None,
) -> Synthesized:
    """Synthesize the stacks of ``env_names`` into one app, as `cdk synth` would."""
    ctx = context or cdk_context()
    app = cdk.App(outdir=str(outdir), context=ctx)
    for name in env_names:
        build_environment(app, load_config(ctx, name))
    if nag:
        enable_nag(app)
    assembly = app.synth()
    templates, files, deps = {}, {}, {}
    for stack in assembly.stacks:
        path = Path(assembly.directory) / stack.template_file
        files[stack.stack_name] = path
        templates[stack.stack_name] = json.loads(path.read_text())
        deps[stack.stack_name] = [d.id for d in stack.dependencies]
    return Synthesized(assembly, templates, files, deps)


_CACHE: dict[str, Synthesized] = {}


@pytest.fixture(scope="session")
def synth_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Synthesized]:
    """``synth_env("dev")``: the dev stacks, synthesized once for the whole session."""

    def get(name: str) -> Synthesized:
        if name not in _CACHE:
            _CACHE[name] = synth(tmp_path_factory.mktemp(f"cdk-{name}"), [name])
        return _CACHE[name]

    return get


@pytest.fixture(scope="session")
def dev(synth_env: Callable[[str], Synthesized]) -> Synthesized:
    return synth_env("dev")


@pytest.fixture(scope="session")
def prod(synth_env: Callable[[str], Synthesized]) -> Synthesized:
    return synth_env("prod")


@pytest.fixture(scope="session")
def all_envs(synth_env: Callable[[str], Synthesized]) -> list[Synthesized]:
    return [synth_env(name) for name in cdk_context()["environments"]]
