"""Estimates the Kubeflow task image's size from the installed wheels.

    .venv/bin/python scripts/estimate_image_size.py [--lock requirements-task.lock]

Sums, for every package the lock pins, the bytes its wheel installed into this
venv (each file in the distribution's RECORD), which is what `pip install` of
the same wheels writes into the image's site-packages. The lock pins the same
versions as the venv's (tests/runners/test_kubeflow_runner.py checks that).
Not included: the base image (python:3.10-slim) and the project's own files.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path


def installed_bytes(lock: Path) -> dict[str, int]:
    """{package: bytes installed} for each package pinned in `lock`."""
    sizes = {}
    for name in re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==", lock.read_text(), re.M):
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            raise SystemExit(
                f"error: {name} is pinned in {lock} but not installed here; "
                "run scripts/setup.sh first"
            ) from None
        sizes[name] = sum(f.size or 0 for f in files)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/estimate_image_size.py",
        description="Estimate the task image's installed package size from this venv's wheels.",
    )
    parser.add_argument("--lock", type=Path, default=Path("requirements-task.lock"))
    parser.add_argument("--top", type=int, default=10, help="largest packages to list")
    args = parser.parse_args(argv)
    sizes = installed_bytes(args.lock)
    print(
        f"{len(sizes)} packages from {args.lock}: {sum(sizes.values()) / 2**20:,.0f} MiB "
        "installed (base image not included)"
    )
    for name, size in sorted(sizes.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {size / 2**20:8,.1f} MiB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
