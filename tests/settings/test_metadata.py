from settings import metadata
from settings.configs import PipelineConfig
from standins import mlmd_grpc_server


def test_sqlite_by_default_under_the_configured_path(tmp_path):
    path = tmp_path / "mlmd" / "store.sqlite"
    connection = metadata.connection_config(PipelineConfig(metadata_path=str(path)))
    assert connection.WhichOneof("config") == "sqlite"
    assert connection.sqlite.filename_uri == str(path)
    assert path.parent.is_dir()


def test_mysql_when_a_host_is_configured(monkeypatch):
    monkeypatch.setenv("CFPB_MYSQL_PASSWORD", "pw")
    config = PipelineConfig(
        mysql_host="db.internal", mysql_port=3307, mysql_database="mlmd_prod", mysql_user="tfx"
    )
    connection = metadata.connection_config(config)
    assert connection.WhichOneof("config") == "mysql"
    assert (connection.mysql.host, connection.mysql.port) == ("db.internal", 3307)
    assert (connection.mysql.database, connection.mysql.user) == ("mlmd_prod", "tfx")
    assert connection.mysql.password == "pw"
    # Summaries name the store but never print the password.
    assert metadata.describe(config) == "mysql://tfx@db.internal:3307/mlmd_prod"


def test_grpc_service_when_an_address_is_configured(tmp_path):
    """A cluster's metadata service (port-forwarded) or the stand-in: the real gRPC client."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    with mlmd_grpc_server.sqlite_standin(str(tmp_path / "served.sqlite")) as server:
        config = PipelineConfig(metadata_grpc=server.address, mysql_host="ignored")
        connection = metadata.connection_config(config)
        assert isinstance(connection, metadata_store_pb2.MetadataStoreClientConfig)
        assert metadata.describe(config) == f"grpc://{server.address}"
        store = metadata_store.MetadataStore(connection)
        store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Seen"))
    local = metadata_store.MetadataStore(
        metadata.connection_config(PipelineConfig(metadata_path=str(tmp_path / "served.sqlite")))
    )
    assert local.get_artifact_type("Seen").name == "Seen"


def test_grpc_address_must_be_host_and_port():
    import pytest

    with pytest.raises(ValueError, match="HOST:PORT"):
        metadata.grpc_connection("metadata-grpc-service")


def test_execution_state_reads_portable_and_legacy_launchers_records():
    from ml_metadata.proto import metadata_store_pb2 as pb

    portable = pb.Execution(last_known_state=pb.Execution.CACHED)
    legacy = pb.Execution()
    legacy.properties["state"].string_value = "complete"
    legacy_custom = pb.Execution()
    legacy_custom.custom_properties["state"].string_value = "new"

    assert metadata.execution_state(portable) == pb.Execution.CACHED
    assert metadata.execution_state(legacy) == pb.Execution.COMPLETE
    assert metadata.execution_state(legacy_custom) == pb.Execution.NEW
    assert metadata.execution_state(pb.Execution()) == pb.Execution.UNKNOWN
