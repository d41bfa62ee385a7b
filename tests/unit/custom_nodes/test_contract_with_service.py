"""The node pack and the service's registration agree: marker table, node ids, combo entry format, and the
recorded ``/object_info`` of the pack's nodes (see :mod:`tests.unit.custom_nodes.recorded`) matches the specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfy_workflows import markers
from comfy_workflows.object_info import parse_node
from custom_nodes.atelier_nodes import lora_catalog
from custom_nodes.atelier_nodes.node_specs import MARKERS, NODE_SPECS, NodeSpec
from tests.unit.custom_nodes.recorded import recorded_object_info


def test_marker_tables_agree() -> None:
    service = {name: (m.kind, m.value_input, m.bounded) for name, m in markers.MARKER_CLASSES.items()}
    pack = {name: (m.kind, m.value_input, m.bounded) for name, m in MARKERS.items()}
    assert service == pack


def test_node_ids_agree() -> None:
    assert {spec.node_id for spec in NODE_SPECS} == markers.ATELIER_NODE_CLASSES


def test_entry_format_agrees() -> None:
    assert (markers.TRIGGER_OPEN, markers.TRIGGER_CLOSE) == (
        lora_catalog.TRIGGER_OPEN,
        lora_catalog.TRIGGER_CLOSE,
    )


@given(
    parts=st.lists(st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True), min_size=1, max_size=3),
    trigger=st.none() | st.text(min_size=1).filter(str.strip),
)
def test_the_service_finds_the_file_behind_an_entry(parts: list[str], trigger: str | None) -> None:
    relative_name = "/".join(parts) + ".safetensors"
    entry = lora_catalog.format_entry(lora_catalog.key_of(relative_name), trigger)
    assert markers.lora_file_of_entry(entry) == relative_name


@pytest.mark.parametrize("spec", NODE_SPECS, ids=lambda spec: spec.node_id)
def test_recorded_object_info_matches_the_specs(spec: NodeSpec) -> None:
    raw = recorded_object_info()[spec.node_id]
    node = parse_node(spec.node_id, raw)
    assert [(i.name, i.type, i.required) for i in node.inputs] == [(i.id, i.type, not i.optional) for i in spec.inputs]
    assert node.outputs == tuple(o.type for o in spec.outputs)
    assert node.output_names == tuple(o.name for o in spec.outputs)
    assert (raw["display_name"], raw["category"], raw["description"]) == (
        spec.display_name,
        spec.category,
        spec.description,
    )
    assert raw["python_module"] == "custom_nodes.atelier_nodes"
    assert "output_matchtypes" in raw  # only V3 nodes report it
