"""DEVELOPMENT STAND-IN for the pod KFP's backend makes for each task.

A task pod shares nothing with the machine that compiled the pipeline, so a
task that reads a local path of that machine, or needs a credential the pod
was not given, fails here as it fails on a cluster:

- Filesystem: the pod's own empty disk. Each task runs in a mount namespace
  (`unshare --mount`) where the host's temporary folder and the project
  checkout (with its development venv) are empty tmpfs mounts; the task starts
  in an empty working folder, and whatever it writes to a local path is gone
  when it exits, as with a pod's disk.
- Image: the task image's interpreter (standins/task_image.py: the Dockerfile's
  requirements-task.lock and the project's wheel), never the development venv.
- Environment: only what a pod gets. The image's `ENV` lines (read from the
  Dockerfile), `KFP_POD_NAME` and `KFP_POD_UID` (compiler/argocompiler/
  common.go commonEnvs), `METADATA_GRPC_SERVICE_HOST`/`_PORT` (EnvFrom the
  metadata-grpc-configmap, container.go), the CA bundle KFP mounts when the
  admin configures one (container.go: `EXECUTOR_CABUNDLE_*` sets
  REQUESTS_CA_BUNDLE, AWS_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR), and what
  the cluster's operator gives every pod (`Cluster.env`: storage credentials,
  on a cluster from a Kubernetes Secret or workload identity). Nothing of the
  developer's environment.
- Outputs: the launcher's executor output file at
  /tmp/kfp_outputs/output_metadata.json (component/launcher_v2.go
  OutputMetadataFilepath), the only folder the backend reads back.
- Memory: a task whose peak resident memory passes its container's memory
  limit fails as OOMKilled, as the kubelet kills it (checked when the task
  ends rather than the moment it passes the limit).

Not modelled: CPU limits (the compiled tasks declare requests only), the
network (tasks reach loopback services; run inside `unshare -n` to have only
loopback), and the host's home folder, which stays visible because the
interpreter lives there; the pod's HOME is its own empty folder, so nothing
finds the developer's credentials through it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from settings.configs import REPO_ROOT

# Inside the pod (component/launcher_v2.go).
OUTPUTS_DIR = "/tmp/kfp_outputs"
OUTPUT_FILE = f"{OUTPUTS_DIR}/output_metadata.json"
# Where the CA bundle is mounted: KFP takes the folder from the admin's
# EXECUTOR_CABUNDLE_MOUNTPATH; here one on the pod's own disk, so that
# mounting it creates nothing on the host.
CA_BUNDLE_PATH = "/tmp/kfp-ca/ca.crt"
# Where the local store's key is mounted, as a Secret volume would be (on a
# cluster the mount path is the operator's choice, e.g. /var/secrets/google);
# on the pod's own disk for the same reason as the CA bundle.
STORE_KEY_PATH = "/tmp/secrets/google/key.json"
_CA_BUNDLE_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs")
_BYTES_PER_GB = 1e9  # KFP formats memory as "<n>G" (driver.go getPodResource)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """What the cluster gives every task pod besides its command."""

    image_python: Path  # the task image's interpreter (standins/task_image.py)
    metadata_grpc: str  # HOST:PORT of the cluster's ML Metadata service
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ca_bundle: Path | None = None  # the CA bundle configmap's file, if any
    # Files mounted read-only into every pod (a Secret volume): pod path -> host file.
    files: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    # Host folders hidden from every pod, besides /tmp and the temporary folder.
    hidden: Sequence[Path] = (REPO_ROOT,)


@dataclasses.dataclass
class PodResult:
    returncode: int
    peak_memory_gb: float
    cpu_seconds: float
    oom_killed: bool


def read_env_file(path: Path) -> dict[str, str]:
    """The `export NAME=VALUE ...` lines of a shell env file (scripts/*.sh write them)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            for word in shlex.split(line[len("export ") :]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def local_store_settings(env_file: Path) -> dict:
    """The Cluster settings (env, ca_bundle, files) that point every pod at
    the local object store (the env.sh of scripts/object_store.sh): its client
    settings, its CA mounted the way KFP mounts an admin's CA bundle (TF's GCS
    client reads CURL_CA_BUNDLE, so it names the mounted file too), and its
    credentials file mounted as a key Secret would be. On a cluster: workload
    identity or a key Secret, and no CA of ours."""
    env = read_env_file(env_file)
    ca_bundle = Path(env.pop("CURL_CA_BUNDLE"))
    env.pop("REQUESTS_CA_BUNDLE", None)  # the CA-bundle mount sets it
    key = Path(env.pop("GOOGLE_APPLICATION_CREDENTIALS"))
    env = {name: value for name, value in env.items() if not name.startswith("CFPB_")}
    env.update(CURL_CA_BUNDLE=CA_BUNDLE_PATH, GOOGLE_APPLICATION_CREDENTIALS=STORE_KEY_PATH)
    return {"env": env, "ca_bundle": ca_bundle, "files": {STORE_KEY_PATH: key}}


def image_env(dockerfile: Path = REPO_ROOT / "Dockerfile") -> dict[str, str]:
    """The `ENV` settings of the task image, read from its Dockerfile."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", dockerfile.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def pod_env(cluster: Cluster, pod_name: str) -> dict[str, str]:
    host, _, port = cluster.metadata_grpc.rpartition(":")
    env = {
        "PATH": f"{cluster.image_python.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp/home",
        "LANG": "C.UTF-8",
        **image_env(),
        "KFP_POD_NAME": pod_name,
        "KFP_POD_UID": str(uuid.uuid4()),
        "METADATA_GRPC_SERVICE_HOST": host,
        "METADATA_GRPC_SERVICE_PORT": port,
    }
    if cluster.ca_bundle:
        env.update(
            REQUESTS_CA_BUNDLE=CA_BUNDLE_PATH,
            AWS_CA_BUNDLE=CA_BUNDLE_PATH,
            SSL_CERT_FILE=CA_BUNDLE_PATH,
            SSL_CERT_DIR=":".join((str(Path(CA_BUNDLE_PATH).parent), *_CA_BUNDLE_DIRS)),
        )
    env.update(cluster.env)
    return env


def _setup_script(cluster: Cluster, outputs: Path, command: Sequence[str], env: dict) -> str:
    """Shell run as root of a fresh mount namespace: hide the host's folders,
    mount the outputs folder (and the CA bundle and files), then exec the task."""
    mounted = dict(cluster.files)
    if cluster.ca_bundle:
        mounted[CA_BUNDLE_PATH] = cluster.ca_bundle
    lines = [
        "set -e",
        "mount --make-rprivate /",
        # What the pod keeps, opened before its parents are hidden.
        f"exec 3<{shlex.quote(str(outputs))}",
    ]
    descriptors = dict(zip(mounted, range(4, 4 + len(mounted)), strict=True))
    lines += [f"exec {fd}<{shlex.quote(str(mounted[path]))}" for path, fd in descriptors.items()]
    pod_disk = Path("/tmp")  # hides whatever lies under it too
    hidden = [
        p
        for p in (*cluster.hidden, Path(tempfile.gettempdir()))
        if p != pod_disk and pod_disk not in p.parents
    ]
    lines += [f"mount -t tmpfs pod {shlex.quote(str(path))}" for path in hidden]
    lines += [
        # The pod's disk (and the host's temporary folder hidden under it).
        "mount -t tmpfs pod /tmp",
        f"mkdir -p {OUTPUTS_DIR} /tmp/home /tmp/work",
        f"mount --bind /proc/self/fd/3 {OUTPUTS_DIR}",
        "exec 3<&-",
    ]
    for path, fd in descriptors.items():
        if not path.startswith("/tmp/"):
            raise ValueError(f"{path}: mount files on the pod's disk (/tmp), not the host's")
        lines += [
            f"mkdir -p {shlex.quote(str(Path(path).parent))} && touch {shlex.quote(path)}",
            f"mount --bind -o ro /proc/self/fd/{fd} {shlex.quote(path)}",
            f"exec {fd}<&-",
        ]
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
    lines += ["cd /tmp/work", f"exec env -i {assignments} {shlex.join(command)}"]
    return "\n".join(lines)


def run(
    cluster: Cluster,
    command: Sequence[str],
    outputs: Path,
    log: Path,
    pod_name: str,
    memory_limit_gb: float = 0.0,
) -> PodResult:
    """Runs `command` (its first word `python` meaning the image's interpreter)
    as a task pod; `outputs` is the host folder the pod sees as
    /tmp/kfp_outputs; the log gets stdout and stderr."""
    command = list(command)
    if command[:1] == ["python"]:
        command[0] = str(cluster.image_python)
    outputs.mkdir(parents=True, exist_ok=True)
    script = _setup_script(cluster, outputs, command, pod_env(cluster, pod_name))
    # As root, a mount namespace; otherwise a user namespace maps the user to
    # root inside it (where the kernel allows unprivileged user namespaces).
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-r", "--mount"]
    with open(log, "w") as out:
        process = subprocess.Popen(
            [*unshare, "/bin/sh", "-c", script], stdout=out, stderr=subprocess.STDOUT, cwd="/"
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    peak_gb = usage.ru_maxrss * 1024 / _BYTES_PER_GB  # ru_maxrss is in KiB on Linux
    oom = bool(memory_limit_gb) and peak_gb > memory_limit_gb
    if oom:
        with open(log, "a") as out:
            out.write(
                f"\nOOMKilled: peak memory {peak_gb:.2f} GB passed the container's limit "
                f"of {memory_limit_gb:g} GB\n"
            )
    return PodResult(
        returncode=137 if oom else process.returncode,
        peak_memory_gb=peak_gb,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        oom_killed=oom,
    )
