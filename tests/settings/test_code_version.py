"""Which code a run ran: the checkout's commit, marked when files changed."""

import subprocess

from settings import code_version
from settings.configs import REPO_ROOT


def test_a_checkout_names_its_commit():
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert code_version.describe() in (head, head + "+changes")
