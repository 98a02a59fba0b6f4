"""The post-deploy commands import nothing that requirements-smoke.txt does not install.

The pipeline and CI install only requirements-smoke.txt before running
``python -m tools.smoke`` (and the README points ``tools.migrate`` users to it).
A fresh interpreter imports both commands; every third-party distribution it
loads must be a pin of that file or a dependency pip installs with one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata

from tests.infra.conftest import ROOT

COMMANDS = ("tools.smoke", "tools.migrate")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_with(path: str) -> set[str]:
    """The pins of ``path`` and every distribution pip installs with them (no extras)."""
    pending = []
    for raw in (ROOT / path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            pending.append(line.partition("==")[0])
    closure: set[str] = set()
    while pending:
        name = _normal(pending.pop())
        if name in closure:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-only dependency (colorama on Windows): not here, not loaded
        closure.add(name)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
    return closure


def test_the_smoke_requirements_cover_what_the_commands_import() -> None:
    probe = (
        "import json, sys\n"
        "startup = set(sys.modules)\n"  # e.g. setuptools' .pth hook, not the commands'
        f"for name in {COMMANDS!r}: __import__(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - startup})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    top_level = json.loads(result.stdout)
    owners = metadata.packages_distributions()
    loaded = {_normal(dist) for module in top_level for dist in owners.get(module, [])}
    missing = sorted(loaded - _installed_with("requirements-smoke.txt"))
    assert loaded and not missing, f"not installed by requirements-smoke.txt: {missing}"
