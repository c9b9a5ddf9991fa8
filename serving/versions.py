"""TF Serving's model directory layout, stated once: `<base>/<model>/<version>/`
where a version is a folder named by a positive integer, and the server serves
the highest one by default (its "latest" version policy).

Callers list a directory with the filesystem they already use (TFX's fileio
in the Pusher, pathlib or TF's gfile elsewhere); the rule takes the names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# A version folder is complete once this file is in it: TFX's Pusher copies it
# last (tfx/components/pusher/executor.py) and TF Serving's loader needs it. A
# folder without it (a push killed, or out of disk, mid-copy) fails to load,
# and TF Serving keeps serving the version it had: its default policy unloads
# the old version only once a newer one is ready
# (tensorflow_serving/core/availability_preserving_policy.cc).
SAVED_MODEL_FILE = "saved_model.pb"


def version_numbers(names: Iterable[str]) -> list[int]:
    """The version folders among a model directory's entries, oldest first.
    Entries may carry a trailing slash (object-store listings do)."""
    return sorted(int(name.rstrip("/")) for name in names if name.rstrip("/").isdigit())


def served_version(
    names: Iterable[str], is_complete: Callable[[int], bool] = lambda version: True
) -> int | None:
    """The version TF Serving serves by default: the highest number, compared
    as numbers (not as text: 10 > 9), among the complete ones (`is_complete`
    tells, e.g. whether SAVED_MODEL_FILE is in the folder)."""
    complete = [v for v in version_numbers(names) if is_complete(v)]
    return complete[-1] if complete else None
