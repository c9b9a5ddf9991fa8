"""What the bucket scenarios share: a scenario module played in a network
namespace that has only loopback (a client looking for a real endpoint or the
metadata server fails instead of sending traffic off the machine), and the
local object store started and stopped around it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from settings.configs import REPO_ROOT

STORE_SCRIPT = REPO_ROOT / "scripts" / "object_store.sh"


def play(module: str, root: Path, timeout: float) -> subprocess.CompletedProcess:
    """`python -m module root` in a loopback-only namespace, without the
    caller's CFPB_* settings."""
    python = f"{sys.executable} -m {module} {root}"
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {python}"],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("CFPB_")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def object_store(folder: Path, bucket: str) -> Iterator[dict[str, str]]:
    """The local store in `folder` (scripts/object_store.sh), stopped on exit;
    yields its env file's settings, which point every client at it."""
    from standins import kfp_pod

    settings = {"CFPB_OBJECT_STORE_DIR": str(folder), "CFPB_BUCKET": bucket}
    subprocess.run([str(STORE_SCRIPT), "start"], env={**os.environ, **settings}, check=True)
    try:
        yield kfp_pod.read_env_file(folder / "env.sh")
    finally:
        subprocess.run([str(STORE_SCRIPT), "stop"], env={**os.environ, **settings}, check=False)
