"""scripts/dev_services.sh and its Compose twin. The servers themselves run in
the integration tests (the `servers` fixture); these check what a user relies
on besides: secrets stay private, servers listen on loopback only, and the
Compose file describes the same databases, users and versions."""

import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "dev_services.sh"
COMPOSE = REPO / "scripts" / "dev_services.compose.yml"
CELERY_COMPOSE = REPO / "scripts" / "airflow_celery.compose.yml"
WORKER_SCRIPT = REPO / "scripts" / "airflow_worker.sh"


def _script_setting(name: str) -> str:
    return re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(), re.MULTILINE).group(1)


def test_help_and_usage_errors(tmp_path):
    env = {**os.environ, "CFPB_SERVICES_DIR": str(tmp_path)}
    shown = subprocess.run([str(SCRIPT), "--help"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "start" in shown.stdout and "stop" in shown.stdout
    assert subprocess.run([str(SCRIPT), "restart"], env=env, capture_output=True).returncode == 2
    status = subprocess.run([str(SCRIPT), "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 3 and "mariadb     stopped" in status.stdout


def test_compose_runs_the_same_databases_users_and_versions():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    mariadb, postgres = services["mariadb"], services["postgres"]
    assert mariadb["environment"]["MARIADB_DATABASE"] == _script_setting("mysql_db")
    assert mariadb["environment"]["MARIADB_USER"] == _script_setting("mysql_user")
    assert postgres["environment"]["POSTGRES_DB"] == _script_setting("pg_db")
    assert postgres["environment"]["POSTGRES_USER"] == _script_setting("pg_user")
    # Debian 12's packages, which the script and the tests use.
    assert mariadb["image"] == "mariadb:10.11" and postgres["image"] == "postgres:15"
    for service in (mariadb, postgres):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    # Passwords from the script's git-ignored files, never inline.
    secrets = yaml.safe_load(COMPOSE.read_text())["secrets"]
    assert {s["file"] for s in secrets.values()} == {
        "../build/services/mysql_password",
        "../build/services/postgres_password",
    }
    assert not any(
        "PASSWORD" in k and not k.endswith("_FILE") and k != "MARIADB_RANDOM_ROOT_PASSWORD"
        for s in (mariadb, postgres)
        for k in s["environment"]
    )


def test_the_celery_compose_runs_what_the_scripts_run():
    """scripts/airflow_celery.compose.yml against dev_services.sh and
    airflow_worker.sh, which the integration tests run."""
    compose = yaml.safe_load(CELERY_COMPOSE.read_text())
    services = compose["services"]
    assert compose["include"] == [COMPOSE.name]
    worker, scheduler = services["worker"], services["scheduler"]
    for service in (worker, scheduler, services["airflow-init"]):
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        # Connection strings carry passwords: only their *_CMD forms, reading secrets.
        for option in ("SQL_ALCHEMY_CONN", "BROKER_URL", "RESULT_BACKEND"):
            assert not [k for k in env if k.endswith(option)], env
            (command,) = [v for k, v in env.items() if k.endswith(f"{option}_CMD")]
            assert "/run/secrets/" in command
        assert service["volumes"] == ["../build/airflow-dags:/opt/airflow/dags:ro"]
        assert service["build"]["dockerfile"] == "Dockerfile.airflow"
    assert worker["command"] == ["airflow", "celery", "worker", "--skip-serve-logs"]
    script = WORKER_SCRIPT.read_text()
    assert "--skip-serve-logs" in script
    default = re.search(r"WORKER_CONCURRENCY:-(\d+)", script).group(1)
    assert worker["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == default
    # The broker keeps queued tasks across a restart, in both.
    assert "--appendonly yes" in services["redis"]["command"][-1]
    assert "\nappendonly yes\n" in SCRIPT.read_text()
    assert compose["secrets"]["redis_password"]["file"] == "../build/services/redis_password"
    assert 'secret "$dir/redis_password"' in SCRIPT.read_text()


def _non_loopback_address():
    """This host's address on its default route (a UDP connect sends nothing)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


@pytest.mark.integration
def test_secrets_are_private_and_servers_listen_on_loopback_only(servers):
    data = Path(servers["CFPB_MYSQL_PASSWORD_FILE"]).parent
    for name in ("env.sh", "mysql_password", "postgres_password", "redis_password"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    ports = [
        int(servers["CFPB_MYSQL_PORT"]),
        int(servers["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit(":", 1)[1].split("/")[0]),
        int(servers["AIRFLOW__CELERY__BROKER_URL"].rsplit(":", 1)[1].split("/")[0]),
    ]
    for port in ports:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    outside = _non_loopback_address()
    if outside is None:
        pytest.skip("this host has no non-loopback address to try")
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=5).close()


@pytest.mark.integration
def test_the_broker_wants_its_password_and_keeps_queued_tasks(servers):
    """Redis as the Celery broker: a client without the password is refused,
    and what is queued is appended to disk (a restarted broker still has it)."""
    import redis

    url = servers["AIRFLOW__CELERY__BROKER_URL"]
    anonymous = redis.Redis.from_url("redis://" + url.split("@", 1)[1])
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    broker = redis.Redis.from_url(url)
    assert broker.config_get("appendonly") == {"appendonly": "yes"}
    assert broker.config_get("bind") == {"bind": "127.0.0.1"}


@pytest.mark.integration
def test_servers_start_under_a_private_folder_and_destroy_deletes_everything(tmp_path_factory):
    """As root the servers run as the mysql/postgres users, which cannot enter
    a folder under a private parent: pytest's tmp (mode 700) is one, like a
    clone under /root or in `mktemp -d` (a clean-clone CI failed so)."""
    data = tmp_path_factory.mktemp("svc") / "services"  # short: socket paths max 107 bytes
    env = {**os.environ, "CFPB_SERVICES_DIR": str(data)}
    server_files = None
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=900
        )
        assert started.returncode == 0, started.stdout + started.stderr
        server_files = Path((data / "server_dir").read_text().strip())
        if os.geteuid() == 0:
            assert not str(server_files).startswith(str(data)), (
                "servers cannot reach the data folder"
            )
        status = subprocess.run([str(SCRIPT), "status"], env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
        for server in ("mariadb     running", "postgresql  running", "redis       running"):
            assert server in status.stdout, status.stdout
    finally:
        destroyed = subprocess.run(
            [str(SCRIPT), "destroy"], env=env, capture_output=True, text=True
        )
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert not data.exists()
    assert server_files is not None and not server_files.exists()
