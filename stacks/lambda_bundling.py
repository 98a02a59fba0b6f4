"""Docker-free bundling of a Python Lambda asset.

``aws_lambda_python_alpha.PythonFunction`` and ``BundlingOptions`` alone need
Docker, which no developer machine or CI runner here has. This local bundler
does the same job on the synth machine: each pinned requirement that is a
pure-Python distribution already installed at exactly that version is copied
from the synth environment (so synth works offline); anything else is
installed with pip for the Lambda platform (manylinux x86_64 wheels only, the
runtime's Python version, ``--no-deps`` so nothing unlisted arrives). Then the
handler package is copied. The Docker image is named
only because CDK requires one; it is used only if this bundler declines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
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
        pending = [
            line for line in _requirements(self.requirements) if not _copy_installed_pure(line, out)
        ]
        if pending:
            self._pip_install(pending, out)
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

    def _pip_install(self, requirements: list[str], out: Path) -> None:
        subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--target", str(out), "--platform", self.platform, "--implementation", "cp",
                "--python-version", self.python_version, "--only-binary=:all:", "--no-deps",
                "--no-compile", *requirements,
            ],
            check=True,
        )  # fmt: skip


def _requirements(path: Path) -> list[str]:
    """The pinned lines of a requirements file (``name==version``), comments dropped."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line):
                raise ValueError(f"{path}: {line!r} is not pinned as name==version")
            lines.append(line)
    return lines


def _copy_installed_pure(requirement: str, out: Path) -> bool:
    """Copy an exactly matching, pure-Python distribution from the synth environment.

    A pure wheel (``py3-none-any``) is the same file set on every platform, so
    the installed copy is what pip would download; copying it keeps synth
    offline-capable. Anything else (other version, compiled code) goes to pip.
    """
    name, version = requirement.split("==")
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    wheel = dist.read_text("WHEEL") or ""
    if dist.version != version or "Root-Is-Purelib: true" not in wheel:
        return False
    base = Path(str(dist.locate_file("")))
    for file in dist.files or []:
        if "__pycache__" in file.parts or file.suffix == ".pyc" or file.parts[0] == "..":
            continue
        source = base / file
        target = out / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return True


def python_asset(source: Path, packages: list[str], runtime: lambda_.Runtime) -> lambda_.AssetCode:
    """Asset of ``packages`` under ``source`` with ``source/requirements.txt`` installed beside.

    The hash is of the source (code, requirements, bundling settings), so it is
    the same on every machine and changes exactly when one of those does.
    """
    version = runtime.name.removeprefix("python")
    # Sibling packages are left out of the hash: otherwise two functions bundling
    # different packages of one source folder get the same hash, and CDK reuses
    # the first bundle for both (the second function would lack its own code).
    siblings = sorted(
        p.name
        for p in source.iterdir()
        if p.is_dir() and p.name not in packages and not p.name.startswith((".", "__"))
    )
    return lambda_.Code.from_asset(
        str(source),
        exclude=[*EXCLUDE, *(pattern for name in siblings for pattern in (name, f"{name}/**"))],
        asset_hash_type=cdk.AssetHashType.SOURCE,
        bundling=cdk.BundlingOptions(
            image=runtime.bundling_image,
            command=["echo", "bundled locally with pip, without Docker"],
            local=PipLocalBundling(source, source / "requirements.txt", packages, version),
        ),
    )
