"""The builder's declared node types agree with the recorded /object_info of a real ComfyUI."""

from __future__ import annotations

import pytest

from comfy_workflows.nodes import NODE_SPECS
from comfy_workflows.object_info import ObjectInfo


@pytest.mark.parametrize("class_type", sorted(NODE_SPECS))
def test_declared_spec_matches_object_info(class_type: str, object_info: ObjectInfo) -> None:
    spec = NODE_SPECS[class_type]
    node = object_info.node(class_type)
    assert node is not None
    assert spec.title == node.display_name
    assert spec.output_node == node.output_node
    assert [t for _, t in spec.outputs] == list(node.outputs)
    assert [n for n, _ in spec.outputs] == list(node.output_names)
    sockets = {i.name: i.type for i in node.inputs if not i.is_widget}
    assert dict(spec.inputs) == sockets
