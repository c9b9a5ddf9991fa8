from pathlib import Path

from tfx.types import standard_artifacts

from components import curated_schema
from data import schema


def test_an_edited_schema_file_is_a_new_cache_key(tmp_path):
    path = tmp_path / "schema.pbtxt"
    path.write_text(schema.SCHEMA_PATH.read_text())
    before = curated_schema.ImportSchemaGen(schema_file=str(path))
    path.write_text(path.read_text().replace('value: "Mortgage"',
                                             'value: "Mortgage"\n  value: "Consumer Loan"'))
    after = curated_schema.ImportSchemaGen(schema_file=str(path))

    assert before.exec_properties["schema_file"] == after.exec_properties["schema_file"]
    assert (before.exec_properties[curated_schema.SCHEMA_SHA256_KEY]
            != after.exec_properties[curated_schema.SCHEMA_SHA256_KEY])
    assert before.id == "ImportSchemaGen"  # node ids and history read as before


def test_tfx_s_executor_still_copies_the_file(tmp_path):
    component = curated_schema.ImportSchemaGen(schema_file=str(schema.SCHEMA_PATH))
    output = standard_artifacts.Schema()
    output.uri = str(tmp_path / "out")
    Path(output.uri).mkdir()
    executor = component.executor_spec.executor_class()
    executor.Do({}, {"schema": [output]}, dict(component.exec_properties))
    assert (tmp_path / "out" / "schema.pbtxt").read_text() == schema.SCHEMA_PATH.read_text()
