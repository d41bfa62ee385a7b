"""The node pack and the service agree (marker table, node ids, combo entry format), and the two entry styles
describe the same nodes: the classic classes give, in ComfyUI's ``/object_info`` form, what a real ComfyUI
reports for the V3 classes (the recording, see :mod:`tests.unit.custom_nodes.recorded`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfy_workflows import markers
from comfy_workflows.object_info import parse_node
from custom_nodes.atelier_nodes import lora_catalog, vocabulary
from custom_nodes.atelier_nodes.nodes_classic import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from tests.unit.custom_nodes.fake_comfy import FolderPaths
from tests.unit.custom_nodes.recorded import recorded_object_info


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ComfyUI folder layout (the classic classes list its files when asked for their inputs)."""
    monkeypatch.setitem(sys.modules, "folder_paths", FolderPaths(tmp_path).module())
    monkeypatch.delenv("ATELIER_URL", raising=False)


def test_marker_tables_agree() -> None:
    service = {name: (m.kind, m.value_input, m.bounded) for name, m in markers.MARKER_CLASSES.items()}
    pack = {name: (m.kind, m.value_input, m.bounded) for name, m in vocabulary.MARKERS.items()}
    assert service == pack


def test_node_ids_agree() -> None:
    assert set(vocabulary.NODE_IDS) == markers.ATELIER_NODE_CLASSES
    assert list(recorded_object_info()) == sorted(vocabulary.NODE_IDS)
    assert list(NODE_CLASS_MAPPINGS) == list(vocabulary.NODE_IDS)


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


COMPARED = (
    "input", "input_order", "is_input_list", "output", "output_is_list", "output_name", "output_tooltips",
    "display_name", "description", "category", "output_node", "search_aliases",
)  # fmt: skip
"""The ``/object_info`` keys both entry styles report."""


def classic_node_info(node_id: str) -> dict[str, Any]:
    """What ComfyUI v0.33.0's ``/object_info`` says about a classic class (its ``node_info``, condensed)."""
    node = NODE_CLASS_MAPPINGS[node_id]
    inputs = node.INPUT_TYPES()
    tooltips = {"output_tooltips": list(node.OUTPUT_TOOLTIPS)} if hasattr(node, "OUTPUT_TOOLTIPS") else {}
    return {
        "input": inputs,
        "input_order": {section: list(items) for section, items in inputs.items()},
        "is_input_list": getattr(node, "INPUT_IS_LIST", False),
        "output": list(node.RETURN_TYPES),
        "output_is_list": [False] * len(node.RETURN_TYPES),
        "output_name": list(node.RETURN_NAMES),
        **tooltips,
        "display_name": NODE_DISPLAY_NAME_MAPPINGS[node_id],
        "description": node.DESCRIPTION,
        "category": node.CATEGORY,
        "output_node": getattr(node, "OUTPUT_NODE", False),
        "search_aliases": getattr(node, "SEARCH_ALIASES", []),
    }


def comparable(entry: dict[str, Any]) -> dict[str, Any]:
    """The parts both styles must agree on, written one way: combos as ``COMBO`` without their options, the
    V3-only ``multiselect: false`` dropped, no aliases as ``[]``, no output tooltips as ``None`` each."""
    entry = json.loads(json.dumps(entry))
    for section in entry["input"].values():
        for name, spec in section.items():
            config = dict(spec[1]) if len(spec) > 1 else {}
            config.pop("options", None)
            if config.get("multiselect") is False:
                del config["multiselect"]
            section[name] = ["COMBO" if isinstance(spec[0], list) else spec[0], config]
    kept = {key: entry.get(key) for key in COMPARED}
    kept["search_aliases"] = kept["search_aliases"] or []
    kept["output_tooltips"] = kept["output_tooltips"] or [None] * len(entry["output"])
    return kept


@pytest.mark.parametrize("node_id", vocabulary.NODE_IDS)
def test_the_classic_class_is_the_recorded_v3_node(node_id: str) -> None:
    recorded = recorded_object_info()[node_id]
    assert comparable(classic_node_info(node_id)) == comparable(recorded)
    assert recorded["python_module"] == "custom_nodes.atelier_nodes"
    assert "output_matchtypes" in recorded  # only V3 nodes report it: the recording is of the V3 classes


@pytest.mark.parametrize("node_id", vocabulary.MARKER_IDS)
def test_the_service_reads_each_recorded_marker(node_id: str) -> None:
    node = parse_node(node_id, recorded_object_info()[node_id])
    reading = markers.MARKER_CLASSES[node_id]
    names = [item.name for item in node.inputs]
    assert names[:2] == ["name", reading.value_input]
    assert names[-1] == "description"
    assert ("min" in names and "max" in names) == reading.bounded
