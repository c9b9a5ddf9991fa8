"""data/storage.py: which kind of location a setting names. Remote I/O itself
runs against the local GCS endpoint in tests/scripts/test_object_store.py."""

import subprocess
import sys
from pathlib import Path

from data import storage


def test_a_uri_is_remote_and_a_path_is_local(tmp_path):
    remote = storage.location("gs://bucket/spans/")
    assert isinstance(remote, storage.RemotePath)
    assert str(remote / "span-20150319" / "complaints.csv") == (
        "gs://bucket/spans/span-20150319/complaints.csv"
    )
    assert (remote / "span-20150319").name == "span-20150319"
    assert storage.location(str(tmp_path)) == tmp_path
    assert isinstance(storage.location(tmp_path), Path)


def test_local_text_round_trips_for_csv(tmp_path):
    path = tmp_path / "a.csv"
    with storage.open_text(path, "w") as f:
        f.write("a,b\r\n1,2\r\n")
    with storage.open_text(path) as f:
        assert f.read() == "a,b\r\n1,2\r\n"


def test_local_locations_never_import_tensorflow():
    code = (
        "import sys; from data import storage; p = storage.location('/tmp'); "
        "p.exists(); assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_gs_uris_and_local_paths_can_hold_pipeline_data():
    assert storage.unsupported_scheme("/data/spans") is None
    assert storage.unsupported_scheme("gs://bucket/spans") is None
    for uri, reason in (
        ("s3://bucket/spans", "wrong data at the end of a file"),
        ("minio://bucket/spans", "no minio:// scheme"),
        ("hdfs://host/spans", "hdfs:// is not a filesystem"),
    ):
        problem = storage.unsupported_scheme(uri)
        assert problem and reason in problem and "use a gs:// bucket" in problem, problem


def test_a_link_names_a_bucket_by_its_uri_and_a_local_path_by_a_file_uri(tmp_path, monkeypatch):
    assert storage.url("gs://bucket/reports/index.html") == "gs://bucket/reports/index.html"
    monkeypatch.chdir(tmp_path)
    assert storage.url("reports") == (tmp_path / "reports").as_uri()
