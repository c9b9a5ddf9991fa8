"""The Compose file, the Kubernetes manifest and the batching file agree with
each other, with the config writer and with the client's defaults. (No Docker
engine or cluster here: their own validation is the user's first `up`/`apply`.)
"""

import importlib.metadata
import re
from pathlib import Path

import yaml
from kubernetes import client as k8s

from feedback import logging_proxy
from serving import client, model_config, urls
from settings import configs
from settings.configs import PipelineConfig

SERVING_DIR = Path(model_config.__file__).resolve().parent
MODEL_NAME = PipelineConfig().model_name


def _compose_service():
    compose = yaml.safe_load((SERVING_DIR / "docker-compose.yml").read_text())
    return compose["services"]["tf-serving"]


def _manifests():
    return list(yaml.safe_load_all((SERVING_DIR / "k8s" / "tf-serving.yaml").read_text()))


def _flags(args):
    return dict(a[2:].split("=", 1) for a in args)


def test_serving_image_matches_the_training_tensorflow():
    tf_minor = ".".join(importlib.metadata.version("tensorflow").split(".")[:2])
    images = [_compose_service()["image"]] + [
        c["image"]
        for m in _manifests()
        if m["kind"] == "Deployment"
        for c in m["spec"]["template"]["spec"]["containers"]
        if c["name"] == "tf-serving"
    ]
    for image in images:
        assert image.startswith(f"tensorflow/serving:{tf_minor}."), image


def test_compose_mounts_everything_its_flags_name():
    service = _compose_service()
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        assert (SERVING_DIR / source).resolve() in (
            SERVING_DIR.parent / "serving_model",
            model_config.DEFAULT_OUTPUT,
            SERVING_DIR / "batching_parameters.txt",
        ), source
        mounts[target] = source
    flags = _flags(service["command"])
    assert flags["model_config_file"] in mounts and flags["batching_parameters_file"] in mounts
    assert mounts[model_config.CONTAINER_MODELS_ROOT] == "../serving_model"
    assert (flags["port"], flags["rest_api_port"]) == ("8500", "8501")
    assert service["ports"] == ["8500:8500", "8501:8501"]
    assert f"GET {urls.model_path(MODEL_NAME)} " in " ".join(service["healthcheck"]["test"])


def test_kubernetes_manifest_is_a_valid_deployment_and_service():
    deployment, service = _manifests()
    api = k8s.ApiClient()
    # The client's models reject missing required fields and wrong kinds.
    deployment = api._ApiClient__deserialize(deployment, "V1Deployment")
    service = api._ApiClient__deserialize(service, "V1Service")
    container = deployment.spec.template.spec.containers[0]
    assert _flags(container.args) == _flags(_compose_service()["command"])
    mounts = {m.mount_path for m in container.volume_mounts}
    flags = _flags(container.args)
    # The versions are read from the bucket (models.config's base_path), with
    # the pod's service account's credentials; nothing is mounted for them.
    assert model_config.CONTAINER_MODELS_ROOT not in mounts
    assert deployment.spec.template.spec.service_account_name == "cfpb-tf-serving"
    assert model_config.default_base_path("gs://b/serving_model", MODEL_NAME) == (
        f"gs://b/serving_model/{MODEL_NAME}"
    )
    assert {
        str(Path(flags["model_config_file"]).parent),
        str(Path(flags["batching_parameters_file"]).parent),
    } <= mounts
    assert container.readiness_probe.http_get.path == urls.model_path(MODEL_NAME)
    ports = {p.name: p.container_port for p in container.ports}
    assert ports == {"grpc": 8500, "http": 8501}
    logger = deployment.spec.template.spec.containers[1]
    ports.update({p.name: p.container_port for p in logger.ports})
    assert {p.target_port for p in service.spec.ports} == set(ports)
    assert service.spec.selector == deployment.spec.template.metadata.labels


def test_client_defaults_point_at_the_served_ports():
    config, args = configs.parse_args(client._parser(), [], names=("model_name",), environ={})
    assert (args.grpc_port, args.rest_port, config.model_name) == (8500, 8501, MODEL_NAME)


# Fields of TF Serving's BatchingParameters (session_bundle_config.proto); the
# proto is not in the tensorflow-serving-api wheel.
BATCHING_FIELDS = {
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "thread_pool_name",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
    "enable_large_batch_splitting",
    "max_execution_batch_size",
}


def test_batching_parameters_use_only_known_fields():
    lines = [
        line
        for line in (SERVING_DIR / "batching_parameters.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    values = {}
    for line in lines:
        match = re.fullmatch(r"(\w+) \{ value: (\d+) \}|(\w+): (true|false)", line.strip())
        assert match, line
        values[match[1] or match[3]] = match[2] or match[4]
    assert set(values) <= BATCHING_FIELDS
    assert int(values["max_batch_size"]) >= 256  # the bench's largest batch fits one call


def _proxy_settings(command: list[str], env: dict[str, str]):
    """The proxy's own parser reading the deploy file's command line:
    (its settings, its own flags)."""
    assert command[:3] == ["python", "-m", "feedback.logging_proxy"], command
    return logging_proxy.parse_args(command[3:], env)


def test_the_request_logger_sits_in_front_of_tf_serving_in_both_files():
    compose = yaml.safe_load((SERVING_DIR / "docker-compose.yml").read_text())["services"]
    service = compose["request-logger"]
    settings, args = _proxy_settings(service["command"], service["environment"])
    assert args.upstream == f"tf-serving:{_flags(_compose_service()['command'])['port']}"
    assert service["ports"] == [f"{args.port}:{args.port}"]
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    assert mounts[str(args.logging_config)] == "./logging.config"
    assert settings.prediction_log_prefix.startswith("/logs/") and mounts["/logs"] == (
        "../build/prediction_logs"
    )
    # The host path the mount lands on is the host's default for the readers.
    assert PipelineConfig().prediction_log_prefix == str(
        (SERVING_DIR / "../build/prediction_logs").resolve() / "predictions"
    )

    deployment, _ = _manifests()
    tf_serving, logger = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in logger["env"]}
    k8s_settings, k8s_args = _proxy_settings(logger["command"] + logger["args"], env)
    assert k8s_args.upstream == f"localhost:{_flags(tf_serving['args'])['port']}"
    assert k8s_settings.prediction_log_prefix == settings.prediction_log_prefix
    logger_mounts = {m["mountPath"] for m in logger["volumeMounts"]}
    assert {"/logs", str(Path(k8s_args.logging_config).parent)} <= logger_mounts
