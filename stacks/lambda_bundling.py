"""Docker-free bundling of a Python Lambda asset.

``aws_lambda_python_alpha.PythonFunction`` and ``BundlingOptions`` alone need
Docker, which no developer machine or CI runner here has. This local bundler
does the same job with the synth machine's own pip: it installs the pinned
requirements for the Lambda platform (manylinux x86_64 wheels only, for the
runtime's Python version, ``--no-deps`` so nothing unlisted arrives) into the
asset directory, then copies the handler package. The Docker image is named
only because CDK requires one; it is used only if this bundler declines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

# Bytecode and caches must neither enter the asset nor change its hash.
EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/*.dist-info/RECORD"]


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    """Bundle ``packages`` from ``source`` plus ``requirements`` for ``python_version``."""

    def __init__(
        self,
        source: Path,
        requirements: Path,
        packages: list[str],
        python_version: str,
        platform: str = "manylinux2014_x86_64",
    ) -> None:
        self.source = source
        self.requirements = requirements
        self.packages = packages
        self.python_version = python_version
        self.platform = platform

    def try_bundle(self, output_dir: str, options: object = None) -> bool:
        out = Path(output_dir)
        subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--target", str(out), "--platform", self.platform, "--implementation", "cp",
                "--python-version", self.python_version, "--only-binary=:all:", "--no-deps",
                "--no-compile", "-r", str(self.requirements),
            ],
            check=True,
        )  # fmt: skip
        for package in self.packages:
            shutil.copytree(
                self.source / package,
                out / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                dirs_exist_ok=True,
            )
        for cache in out.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


def python_asset(source: Path, packages: list[str], runtime: lambda_.Runtime) -> lambda_.AssetCode:
    """Asset of ``packages`` under ``source`` with ``source/requirements.txt`` installed beside.

    The hash is of the source (code, requirements, bundling settings), so it is
    the same on every machine and changes exactly when one of those does.
    """
    version = runtime.name.removeprefix("python")
    return lambda_.Code.from_asset(
        str(source),
        exclude=EXCLUDE,
        asset_hash_type=cdk.AssetHashType.SOURCE,
        bundling=cdk.BundlingOptions(
            image=runtime.bundling_image,
            command=["echo", "bundled locally with pip, without Docker"],
            local=PipLocalBundling(source, source / "requirements.txt", packages, version),
        ),
    )
