"""TF Serving's model directory layout, stated once: `<base>/<model>/<version>/`
where a version is a folder named by a positive integer, and the server serves
the highest one by default (its "latest" version policy).

Callers list a directory with the filesystem they already use (TFX's fileio
in the Pusher, pathlib or TF's gfile elsewhere); the rule takes the names.
"""

from __future__ import annotations

from collections.abc import Iterable


def version_numbers(names: Iterable[str]) -> list[int]:
    """The version folders among a model directory's entries, oldest first.
    Entries may carry a trailing slash (object-store listings do)."""
    return sorted(int(name.rstrip("/")) for name in names if name.rstrip("/").isdigit())


def served_version(names: Iterable[str]) -> int | None:
    """The version TF Serving serves by default: the highest number, compared
    as numbers (not as text: 10 > 9)."""
    versions = version_numbers(names)
    return versions[-1] if versions else None
