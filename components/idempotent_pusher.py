"""A Pusher that never pushes the same SavedModel twice.

After the first model is blessed, the next run's Resolver returns that model as
the baseline, so Evaluator's inputs change and it re-evaluates even when the
Trainer was served from cache. TFX's Pusher would then copy the identical model
into a new version folder, and TF Serving would load a "new" version that is
the old one. This executor first looks at the newest version folder and, if it
holds the same SavedModel (same `fingerprint.pb`, which hashes the graph,
signatures and checkpoint), records that version as the push instead of copying.

Only the newest version counts as "already served": TF Serving serves the
highest version number, so an older model blessed again (a rollback whose
Trainer answered from cache) must be copied into a new, higher version, or the
rollback would silently leave the newer model in service.
"""

from __future__ import annotations

import os
from typing import Any

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import artifact_properties
from serving import versions

FINGERPRINT_FILE = "fingerprint.pb"
# Custom property on the PushedModel artifact: 1 when an existing version was
# recognized instead of copying the model again.


def _read(path: str) -> bytes | None:
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as f:
        return f.read()


def newest_version(base_directory: str) -> str | None:
    """The version TF Serving serves: the highest numeric folder name."""
    if not fileio.isdir(base_directory):
        return None
    served = versions.served_version(fileio.listdir(base_directory))
    return None if served is None else str(served)


def find_identical_version(model_path: str, base_directory: str) -> tuple[str, str] | None:
    """(version, path) of the served version if it already is this model."""
    fingerprint = _read(os.path.join(model_path, FINGERPRINT_FILE))
    version = newest_version(base_directory)
    if fingerprint is None or version is None:
        return None
    path = os.path.join(base_directory, version)
    if _read(os.path.join(path, FINGERPRINT_FILE)) == fingerprint:
        return version, path
    return None


class Executor(pusher_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        destination = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
            pusher_pb2.PushDestination(),
        )
        if self.CheckBlessing(input_dict) and destination.HasField("filesystem"):
            existing = find_identical_version(
                self.GetModelPath(input_dict), destination.filesystem.base_directory
            )
            if existing:
                version, path = existing
                model_push = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY]
                )
                self._MarkPushed(model_push, pushed_destination=path, pushed_version=version)
                model_push.set_int_custom_property(artifact_properties.REUSED_VERSION, 1)
                return
        super().Do(input_dict, output_dict, exec_properties)
