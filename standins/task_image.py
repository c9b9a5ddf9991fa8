"""DEVELOPMENT STAND-IN for the Kubeflow task image the Dockerfile builds.

The image is `pip install -r requirements-task.lock` plus the project's wheel,
run from an empty folder (Dockerfile). Without a Docker engine, the same thing
as a virtualenv: the lock installed with uv (hard links from uv's cache, ~10 s),
then the wheel built from every file git tracks, and nothing of the checkout or
the development venv. One image per content (the lock and the tracked product
files), kept under ~/.cache/cfpb-tfx-pipeline/task-image/ and shared by test
processes (a file lock guards the build); older ones are removed.

    python -m standins.task_image        # builds (or finds) it, prints its python
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from settings.configs import REPO_ROOT

LOCK = REPO_ROOT / "requirements-task.lock"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cfpb-tfx-pipeline"
IMAGES = CACHE / "task-image"
_KEEP = 3  # images kept (other checkouts may use the older ones)


def tracked_files(root: Path = REPO_ROOT) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return sorted(filter(None, listed.split("\0")))


def build_wheel(out_dir: Path, root: Path = REPO_ROOT) -> Path:
    """The wheel `pip install .` builds, from a copy of every tracked file
    (setuptools writes into the tree it builds; untracked files stay out)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        for name in tracked_files(root):
            if (root / name).is_file():
                target = source / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / name, target)
        subprocess.run(
            # No build isolation: the venv's pinned setuptools builds it, offline.
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
            + ["-w", str(out_dir), str(source)],
            check=True,
        )
    (built,) = out_dir.glob("*.whl")
    return built


def product_packages() -> list[str]:
    """The packages setup.py installs (the one list of them)."""
    listed = re.search(r"packages=\[([^\]]*)\]", (REPO_ROOT / "setup.py").read_text())
    assert listed, "setup.py lists no packages"
    return re.findall(r'"(\w+)"', listed.group(1))


def _content_key() -> str:
    """Changes with the lock, setup.py or any tracked file of a product package."""
    digest = hashlib.sha256(LOCK.read_bytes() + (REPO_ROOT / "setup.py").read_bytes())
    packages = tuple(f"{package}/" for package in product_packages())
    for name in tracked_files():
        if name.startswith(packages) and (REPO_ROOT / name).is_file():
            digest.update(name.encode() + b"\0" + (REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    return str(uv) if uv.exists() else "uv"


def build(echo=print) -> Path:
    """The image's python, built if this content has none yet."""
    image = IMAGES / _content_key()
    python = image / "bin" / "python"
    if (image / "READY").exists():
        return python
    IMAGES.mkdir(parents=True, exist_ok=True)
    with open(IMAGES / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (image / "READY").exists():
            return python
        echo(f"building the task image stand-in {image} (requirements-task.lock + wheel)")
        shutil.rmtree(image, ignore_errors=True)
        base = os.path.realpath(sys.executable)  # the interpreter the venv was made from
        subprocess.run([_uv(), "venv", "-q", "--python", base, str(image)], check=True)
        subprocess.run(
            # Not --compile-bytecode (a minute for all of TensorFlow): the first
            # pods write the bytecode of what tasks import (atomically).
            [_uv(), "pip", "install", "-q", "--python", str(python), "--no-deps"]
            + ["-r", str(LOCK)],
            check=True,
        )
        with tempfile.TemporaryDirectory() as wheels:
            wheel = build_wheel(Path(wheels))
            subprocess.run(
                [_uv(), "pip", "install", "-q", "--python", str(python), "--no-deps", str(wheel)],
                check=True,
            )
        (image / "READY").touch()
        _remove_old(keep=image)
    return python


def _remove_old(keep: Path) -> None:
    images = sorted(
        (p for p in IMAGES.iterdir() if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in images[_KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m standins.task_image",
        description="Build (or find) the virtualenv that stands in for the Kubeflow task "
        "image; prints its python.",
    ).parse_args(argv)
    print(build(echo=lambda text: print(text, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
