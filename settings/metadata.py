"""ML Metadata connection: SQLite under build/ by default, MySQL or a gRPC
metadata service (a Kubeflow cluster's) when configured."""

from __future__ import annotations

import os
from pathlib import Path

# ML Metadata's protos only: the ground floor imports no TFX, so that every
# command parses its settings and connects without TFX's import cost.
from ml_metadata.proto import metadata_store_pb2

from settings.configs import StoreSettings, is_remote


def grpc_connection(address: str) -> metadata_store_pb2.MetadataStoreClientConfig:
    """MLMD's gRPC client config for `HOST:PORT`."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"an ML Metadata gRPC address is HOST:PORT, not {address!r}")
    return metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port))


def connection_config(config: StoreSettings):
    """The MLMD connection every runner and the notebook use for `config`."""
    if config.metadata_grpc:
        return grpc_connection(config.metadata_grpc)
    # The same messages as tfx.orchestration.metadata's
    # mysql_/sqlite_metadata_connection_config (TFX 1.16).
    if config.uses_mysql:
        return metadata_store_pb2.ConnectionConfig(
            mysql=metadata_store_pb2.MySQLDatabaseConfig(
                host=config.mysql_host,
                port=config.mysql_port,
                database=config.mysql_database,
                user=config.mysql_user,
                password=config.mysql_password(),
            )
        )
    if not is_remote(config.metadata_path):
        Path(config.metadata_path).parent.mkdir(parents=True, exist_ok=True)
    return metadata_store_pb2.ConnectionConfig(
        sqlite=metadata_store_pb2.SqliteMetadataSourceConfig(
            filename_uri=os.fspath(config.metadata_path),
            connection_mode=metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE,
        )
    )


def describe(config: StoreSettings) -> str:
    """Where the store lives, for run summaries (never prints the password)."""
    if config.metadata_grpc:
        return f"grpc://{config.metadata_grpc}"
    if config.uses_mysql:
        return (
            f"mysql://{config.mysql_user}@{config.mysql_host}:{config.mysql_port}/"
            f"{config.mysql_database}"
        )
    return config.metadata_path


# TFX's legacy launchers (InteractiveContext; Airflow's TFX DAG runner before
# runners/airflow_dag.py) leave last_known_state unset and record the outcome
# as a "state" string property (tfx/orchestration/metadata.py: 'new',
# 'complete', 'cached').
_LEGACY_STATES = {
    "new": metadata_store_pb2.Execution.NEW,
    "complete": metadata_store_pb2.Execution.COMPLETE,
    "cached": metadata_store_pb2.Execution.CACHED,
}


def execution_state(execution: metadata_store_pb2.Execution) -> int:
    """The execution's Execution.State, from whichever launcher recorded it."""
    if execution.HasField("last_known_state"):
        return execution.last_known_state
    for properties in (execution.properties, execution.custom_properties):
        if "state" in properties:
            return _LEGACY_STATES.get(
                properties["state"].string_value, metadata_store_pb2.Execution.UNKNOWN
            )
    return metadata_store_pb2.Execution.UNKNOWN
