"""A Pusher that never pushes the same SavedModel twice, and never pushes a
model over one it was not compared with.

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

The candidate was blessed against the served model of its Evaluator's time
(components/model_baseline.py). Two runs of one pipeline may overlap (an
Airflow run beside a Beam run on MySQL, KFP runs on one metadata service,
docs/concurrency.md): if the other pushed in between, the served model is one
this candidate never beat. Then nothing is pushed: the PushedModel says
`pushed` 0 and why (`push_refused`), and the next run compares its model with
the one now served. The check and the copy hold a lock beside the serving
folder (`push_lock`): a file lock when it is local, a lock object made of
conditional writes on a bucket, so two pushes never interleave.

Every new version gets its model card (components/model_card.py) in
`assets.extra/`, written before `saved_model.pb`, which is copied last: a
version is complete, for TF Serving and for serving/versions.py, only with
its card. The Pusher therefore also takes the Evaluator's `evaluation` and
the training window's `examples` (PusherSpec below).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

from components import artifact_properties, model_card
from data import object_lock
from models import private_training
from serving import versions
from settings.configs import is_remote

FINGERPRINT_FILE = "fingerprint.pb"
# The Pusher's inputs beyond TFX's, for the model card: the Evaluator's
# metrics and the training window's examples (their spans).
EVALUATION_KEY = "evaluation"
# custom_config[MODEL_CARD_KEY]: the settings the card states (thresholds,
# model name, data root), set by pipeline/pipeline.py from the config.
MODEL_CARD_KEY = "model_card"
PUSH_LOCK_SUFFIX = ".push.lock"


def _read(path: str) -> bytes | None:
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as f:
        return f.read()


def newest_version(base_directory: str) -> str | None:
    """The version TF Serving serves: the highest numeric folder name holding
    a whole SavedModel (an interrupted push's folder is not served)."""
    if not fileio.isdir(base_directory):
        return None
    served = versions.served_version(
        fileio.listdir(base_directory),
        lambda v: fileio.exists(os.path.join(base_directory, str(v), versions.SAVED_MODEL_FILE)),
    )
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


def superseded_baseline(blessing: types.Artifact, base_directory: str) -> str | None:
    """Why the model blessed by `blessing` must not be pushed, or None: the
    served model must be the baseline it was compared with (none served when
    it had none)."""
    baseline_uri = blessing.get_string_custom_property(artifact_properties.BASELINE_MODEL_URI)
    version = newest_version(base_directory)
    served = _read(os.path.join(base_directory, version, FINGERPRINT_FILE)) if version else None
    baseline = (
        _read(os.path.join(path_utils.serving_model_path(baseline_uri), FINGERPRINT_FILE))
        if baseline_uri
        else None
    )
    if served == baseline:
        return None
    compared = f"the model at {baseline_uri}" if baseline_uri else "no served model"
    return (
        f"version {version} of {base_directory} was pushed after this model was compared "
        f"with {compared} (another run of the pipeline pushed meanwhile); the next run "
        "compares its model with the one served now"
    )


@contextlib.contextmanager
def push_lock(base_directory: str) -> Iterator[None]:
    """Holds `<base_directory>.push.lock` (beside the version folders, which
    TF Serving lists) while a push is checked and copied: a file lock on a
    local folder; on a bucket, a lock object written only by conditional
    writes (data/object_lock.py), whose lease frees it if its holder is killed."""
    path = base_directory.rstrip("/") + PUSH_LOCK_SUFFIX
    if is_remote(base_directory):
        with object_lock.held(path, say=logging.warning):
            yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits: another push takes seconds
        yield
    finally:
        os.close(fd)


def _model_card(
    input_dict: dict[str, list[types.Artifact]],
    exec_properties: dict[str, Any],
    version: str,
    served_before: str | None,
) -> dict[str, Any]:
    from components import evaluation_files
    from settings import code_version

    # None when the Pusher is built without card settings (TFX writes "null").
    settings = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    card_settings = (settings or {}).get(MODEL_CARD_KEY, {})
    blessing = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.MODEL_BLESSING_KEY]
    )
    evaluations = input_dict.get(EVALUATION_KEY) or []
    metrics = evaluation_files.metrics_by_slice(evaluations[0].uri) if evaluations else {}
    has_baseline = bool(blessing.get_string_custom_property(artifact_properties.BASELINE_MODEL_URI))
    return model_card.build(
        model_name=card_settings.get("model_name", "model"),
        version=version,
        date=datetime.date.today().isoformat(),
        metrics=metrics,
        spans=sorted(
            {
                e.get_int_custom_property(artifact_properties.SPAN)
                for e in input_dict.get(standard_component_specs.EXAMPLES_KEY, [])
            }
        ),
        data_location=card_settings.get("data_root", ""),
        blessed=bool(blessing.get_int_custom_property(artifact_properties.BLESSED)),
        baseline=f"version {served_before}" if has_baseline and served_before else None,
        thresholds={
            name: float(card_settings[name])
            for name in ("min_auc", "max_auc_regression", "decision_threshold")
            if name in card_settings
        },
        code_version=code_version.describe(),
        privacy=private_training.describe(
            private_training.parse_accounting(
                artifact_utils.get_single_instance(
                    input_dict[standard_component_specs.MODEL_KEY]
                ).get_string_custom_property(artifact_properties.PRIVACY_ACCOUNTING)
            )
        ),
    )


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
        if not (self.CheckBlessing(input_dict) and destination.HasField("filesystem")):
            super().Do(input_dict, output_dict, exec_properties)
            return
        base_directory = destination.filesystem.base_directory
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_BLESSING_KEY]
        )
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        with push_lock(base_directory):
            existing = find_identical_version(self.GetModelPath(input_dict), base_directory)
            if existing:
                version, path = existing
                self._MarkPushed(model_push, pushed_destination=path, pushed_version=version)
                model_push.set_int_custom_property(artifact_properties.REUSED_VERSION, 1)
            elif refused := superseded_baseline(blessing, base_directory):
                logging.warning("Not pushing: %s", refused)
                self._MarkNotPushed(model_push)
                model_push.set_string_custom_property(artifact_properties.PUSH_REFUSED, refused)
                return
            else:
                self._push_with_card(input_dict, exec_properties, base_directory, model_push)
        model_push.set_int_custom_property(artifact_properties.PUSHED_MODEL_ID, model.id)

    def _push_with_card(
        self,
        input_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
        base_directory: str,
        model_push: types.Artifact,
    ) -> None:
        """Copies the model into a new version folder with its model card in
        `assets.extra/`, `saved_model.pb` last: the version counts (for TF
        Serving and serving/versions.py) only once it is whole, card included."""
        model_path = self.GetModelPath(input_dict)
        served_before = newest_version(base_directory)
        version = int(time.time())
        while fileio.exists(os.path.join(base_directory, str(version))):
            version += 1  # never a push into a folder another push wrote
        serving_path = os.path.join(base_directory, str(version))
        io_utils.copy_dir(
            model_path, serving_path, deny_regex_patterns=[re.escape(versions.SAVED_MODEL_FILE)]
        )
        card = _model_card(input_dict, exec_properties, str(version), served_before)
        model_card.write(card, serving_path)
        io_utils.copy_file(
            os.path.join(model_path, versions.SAVED_MODEL_FILE),
            os.path.join(serving_path, versions.SAVED_MODEL_FILE),
        )
        logging.info("Model and its card written to serving path %s.", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)  # TFX's archive of what was pushed
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher inputs, plus what the model card reads."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EVALUATION_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True
        ),
        standard_component_specs.EXAMPLES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.Examples, optional=True
        ),
    }


class Pusher(pusher_component.Pusher):
    """TFX's Pusher with this module's executor: never the same model twice,
    never over a model it was not compared with, a model card with every push."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        push_destination: pusher_pb2.PushDestination,
        evaluation: types.BaseChannel | None = None,
        examples: types.BaseChannel | None = None,
        card_settings: dict[str, Any] | None = None,
    ):
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            push_destination=push_destination,
            custom_config=json.dumps({MODEL_CARD_KEY: card_settings or {}}, sort_keys=True),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            **{EVALUATION_KEY: evaluation, standard_component_specs.EXAMPLES_KEY: examples},
        )
        base_component.BaseComponent.__init__(self, spec=spec)
