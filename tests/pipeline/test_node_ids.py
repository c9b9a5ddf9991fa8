from tfx.dsl.compiler import compiler_utils

from pipeline import node_ids


def test_node_contexts_are_named_as_tfx_names_them():
    assert node_ids.node_context_name("cfpb-disputes", node_ids.TRAINER) == (
        compiler_utils.node_context_name("cfpb-disputes", node_ids.TRAINER)
    )
