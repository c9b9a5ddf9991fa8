"""Writes TF Serving's `models.config` from the versions the Pusher pushed.

    python -m serving.model_config            # -> serving/models.config

Serves two versions at most, labelled for a canary rollout: `canary` is the
newest pushed version, `stable` the one before it (the same version when only
one was pushed). Clients that ask for `/labels/stable` keep getting the proven
model while `/labels/canary` gets the new one; promote by re-running with
`--stable <version>`. TF Serving re-reads the file every
`--model_config_file_poll_wait_seconds` (60 s in the Compose file and manifest).

Every version is checked against the serving contract first: a folder that is
not a complete SavedModel with this project's signatures is never put in the
config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from data import storage
from data.storage import Location
from serving import contract, versions
from settings import configs

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "models.config"
# Where the Compose file and the Kubernetes manifest mount the serving directory.
CONTAINER_MODELS_ROOT = "/models"
STABLE, CANARY = "stable", "canary"


class ModelConfigError(ValueError):
    """No servable version, or a label pointing at a version that was not pushed."""


def pushed_versions(model_dir: Location) -> list[int]:
    """Numeric version folders under `<serving dir>/<model name>`, oldest first."""
    if not model_dir.is_dir():
        raise ModelConfigError(
            f"{model_dir} does not exist: has the pipeline pushed a model? "
            "(python runners/beam_runner.py)"
        )
    numbers = versions.version_numbers(p.name for p in model_dir.iterdir() if p.is_dir())
    if not numbers:
        raise ModelConfigError(f"{model_dir} holds no version folders: nothing was pushed yet")
    return numbers


def default_base_path(serving_model_dir: str, model_name: str) -> str:
    """Where TF Serving finds the versions: in the bucket the Pusher wrote to
    (its GCS filesystem reads it), or a local serving folder mounted into the
    container."""
    if configs.is_remote(serving_model_dir):
        return f"{serving_model_dir.rstrip('/')}/{model_name}"
    return f"{CONTAINER_MODELS_ROOT}/{model_name}"


def choose_labels(
    versions: Sequence[int], stable: int | None = None, canary: int | None = None
) -> dict:
    """{label: version}: canary = newest, stable = the one before, unless given."""
    canary = versions[-1] if canary is None else canary
    if stable is None:
        older = [v for v in versions if v < canary]
        stable = older[-1] if older else canary
    for label, version in ((STABLE, stable), (CANARY, canary)):
        if version not in versions:
            raise ModelConfigError(
                f"--{label} {version}: not a pushed version "
                f"(pushed: {', '.join(map(str, versions))})"
            )
    return {STABLE: stable, CANARY: canary}


def build_config(
    model_name: str, base_path: str, labels: dict
) -> model_server_config_pb2.ModelServerConfig:
    server_config = model_server_config_pb2.ModelServerConfig()
    model = server_config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    model.model_version_policy.specific.versions.extend(sorted(set(labels.values())))
    for label, version in labels.items():
        model.version_labels[label] = version
    return server_config


def write_model_config(
    model_dir: Location,
    model_name: str,
    output: Path,
    base_path: str,
    stable: int | None = None,
    canary: int | None = None,
) -> dict:
    """Checks the labelled versions, writes the config; returns {label: version}."""
    labels = choose_labels(pushed_versions(model_dir), stable, canary)
    for version in sorted(set(labels.values())):
        problems = contract.model_problems(model_dir / str(version))
        if problems:
            raise ModelConfigError(f"version {version} cannot be served: " + "; ".join(problems))
    text = text_format.MessageToString(build_config(model_name, base_path, labels))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        "# Written by `python -m serving.model_config` from the pushed versions.\n" + text
    )
    return labels


def read_labels(config_file: Path, model_name: str) -> dict[str, int] | None:
    """{label: version} of `model_name` in a written config (what TF Serving
    serves under each label); None when the file does not exist."""
    if not config_file.is_file():
        return None
    server_config = text_format.Parse(
        config_file.read_text(), model_server_config_pb2.ModelServerConfig()
    )
    for model in server_config.model_config_list.config:
        if model.name == model_name:
            return dict(model.version_labels)
    raise ModelConfigError(f"{config_file} configures no model named {model_name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.model_config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="config file to write (default: %(default)s)",
    )
    parser.add_argument(
        "--base-path",
        help="model base path as the server sees it (default: the serving directory "
        "itself when it is a bucket, which TF Serving reads directly; else "
        f"{CONTAINER_MODELS_ROOT}/<model name>, the container mount; give the "
        "absolute host path for a tensorflow_model_server run on this machine)",
    )
    parser.add_argument("--stable", type=int, help="version for the 'stable' label")
    parser.add_argument("--canary", type=int, help="version for the 'canary' label")
    config, args = configs.parse_args(parser, argv, names=("serving_model_dir", "model_name"))
    model_dir = storage.location(config.serving_model_dir) / config.model_name
    base_path = args.base_path or default_base_path(config.serving_model_dir, config.model_name)
    try:
        storage.check_reachable(config.serving_model_dir, "--serving-model-dir")
        labels = write_model_config(
            model_dir, config.model_name, args.output, base_path, args.stable, args.canary
        )
    except (ModelConfigError, contract.ContractError, storage.StorageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.output}: model {config.model_name!r} at {base_path}, "
        f"stable -> {labels[STABLE]}, canary -> {labels[CANARY]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
