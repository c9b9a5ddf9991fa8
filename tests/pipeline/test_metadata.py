from pipeline import metadata
from pipeline.configs import PipelineConfig


def test_sqlite_by_default_under_the_configured_path(tmp_path):
    path = tmp_path / "mlmd" / "store.sqlite"
    connection = metadata.connection_config(PipelineConfig(metadata_path=str(path)))
    assert connection.WhichOneof("config") == "sqlite"
    assert connection.sqlite.filename_uri == str(path)
    assert path.parent.is_dir()


def test_mysql_when_a_host_is_configured(monkeypatch):
    monkeypatch.setenv("CFPB_MYSQL_PASSWORD", "pw")
    config = PipelineConfig(mysql_host="db.internal", mysql_port=3307,
                            mysql_database="mlmd_prod", mysql_user="tfx")
    connection = metadata.connection_config(config)
    assert connection.WhichOneof("config") == "mysql"
    assert (connection.mysql.host, connection.mysql.port) == ("db.internal", 3307)
    assert (connection.mysql.database, connection.mysql.user) == ("mlmd_prod", "tfx")
    assert connection.mysql.password == "pw"
    # Summaries name the store but never print the password.
    assert metadata.describe(config) == "mysql://tfx@db.internal:3307/mlmd_prod"
