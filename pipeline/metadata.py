"""ML Metadata connection: SQLite under build/ by default, MySQL or a gRPC
metadata service (a Kubeflow cluster's) when configured."""

from __future__ import annotations

import os
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

# tfx.orchestration.metadata, not tfx.v1 (see pipeline/pipeline.py: import cost).
from tfx.orchestration import metadata as tfx_metadata

from pipeline.configs import PipelineConfig, is_remote


def grpc_connection(address: str) -> metadata_store_pb2.MetadataStoreClientConfig:
    """MLMD's gRPC client config for `HOST:PORT`."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"an ML Metadata gRPC address is HOST:PORT, not {address!r}")
    return metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port))


def connection_config(config: PipelineConfig):
    """The MLMD connection every runner and the notebook use for `config`."""
    if config.metadata_grpc:
        return grpc_connection(config.metadata_grpc)
    if config.uses_mysql:
        return tfx_metadata.mysql_metadata_connection_config(
            host=config.mysql_host,
            port=config.mysql_port,
            database=config.mysql_database,
            username=config.mysql_user,
            password=config.mysql_password(),
        )
    if not is_remote(config.metadata_path):
        Path(config.metadata_path).parent.mkdir(parents=True, exist_ok=True)
    return tfx_metadata.sqlite_metadata_connection_config(os.fspath(config.metadata_path))


def describe(config: PipelineConfig) -> str:
    """Where the store lives, for run summaries (never prints the password)."""
    if config.metadata_grpc:
        return f"grpc://{config.metadata_grpc}"
    if config.uses_mysql:
        return (
            f"mysql://{config.mysql_user}@{config.mysql_host}:{config.mysql_port}/"
            f"{config.mysql_database}"
        )
    return config.metadata_path
