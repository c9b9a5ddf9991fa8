"""The metadata-service stand-in on MariaDB serves calls at once, as the real
server does on MySQL (each RPC on a connection of its own), and concurrent
writers through it lose nothing."""

import threading

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from settings import metadata
from standins import mlmd_grpc_server
from tests.conftest import mysql_settings, small_config

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
WRITERS, EXECUTIONS_EACH = 6, 15


def test_concurrent_writers_on_mysql_are_served_at_once_and_lose_nothing(servers, tmp_path):
    config = small_config(tmp_path, **mysql_settings(servers, "mlmd_grpc_service"))
    with mlmd_grpc_server.MetadataGrpcStandin(metadata.connection_config(config)) as service:
        client = metadata_store.MetadataStore(metadata.grpc_connection(service.address))
        type_id = client.put_execution_type(pb.ExecutionType(name="Written"))
        failures = []

        def write(writer: int) -> None:
            own = metadata_store.MetadataStore(metadata.grpc_connection(service.address))
            try:
                for n in range(EXECUTIONS_EACH):
                    execution = pb.Execution(type_id=type_id, name=f"{writer}-{n}")
                    own.put_execution(execution, [], contexts=[])
            except Exception as error:  # noqa: BLE001 - reported below, with its writer
                failures.append((writer, error))

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert not failures
        names = {e.name for e in client.get_executions_by_type("Written")}
        assert len(names) == WRITERS * EXECUTIONS_EACH
        assert service.peak_in_flight > 1  # one at a time would hide lock waits and deadlocks
