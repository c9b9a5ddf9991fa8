"""Which version of this project's code a run ran: recorded on the run's
`pipeline_run` context in ML Metadata (property PROPERTY), shown by the run
report and the model card.

The git commit of the checkout, with "+changes" when tracked files differ
from it; the package version when the code is not a git checkout (an
installed wheel, a task image).
"""

from __future__ import annotations

import subprocess
from importlib import metadata

from settings.configs import REPO_ROOT

PROPERTY = "code_version"
PACKAGE = "cfpb-tfx-pipeline"


def describe() -> str:
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no")
        return commit + ("+changes" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        try:
            return f"{PACKAGE} {metadata.version(PACKAGE)}"
        except metadata.PackageNotFoundError:
            return "unknown (not a git checkout, package not installed)"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
