"""Property: every valid request builds a graph the recorded backend accepts and the editor format keeps."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.templates import get_template, list_templates
from comfy_workflows.ui_format import api_to_ui, ui_to_api
from comfy_workflows.validation import validate_built
from tests.unit.comfy_workflows.conftest import SPECS, load_raw_object_info, lora_refs

_RAW = load_raw_object_info()
_SAMPLERS = _RAW["KSampler"]["input"]["required"]["sampler_name"][0]
_SCHEDULERS = _RAW["KSampler"]["input"]["required"]["scheduler"][0]

_size = st.none() | st.integers(min_value=8, max_value=256).map(lambda n: n * 8)
_strength = st.floats(min_value=-10, max_value=10, allow_nan=False)
_lora = st.fixed_dictionaries(
    {"lora": st.text(min_size=1, max_size=10)},
    optional={"version": st.integers(1, 50), "strength_model": _strength, "strength_clip": _strength},
)
_common = {
    "base_model": st.text(min_size=1, max_size=20),
    "prompt": st.text(min_size=1, max_size=60),
    "loras": st.lists(_lora, max_size=4),
}
_optional = {
    "negative_prompt": st.text(max_size=30),
    "width": _size,
    "height": _size,
    "steps": st.integers(1, 150),
    "cfg": st.none() | st.floats(min_value=0, max_value=30, allow_nan=False),
    "sampler": st.sampled_from(_SAMPLERS),
    "scheduler": st.none() | st.sampled_from(_SCHEDULERS),
    "seed": st.none() | st.integers(0, 2**64 - 1),
    "batch_size": st.integers(1, 4),
}
_img2img = {"init_image": st.text(min_size=1, max_size=30), "denoise": st.floats(0, 1)}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from([t.name for t in list_templates()]))
    required: dict[str, st.SearchStrategy[Any]] = dict(_common)
    optional: dict[str, st.SearchStrategy[Any]] = dict(_optional)
    if name == "img2img":
        required["init_image"] = _img2img["init_image"]
        optional["denoise"] = _img2img["denoise"]
    body = draw(st.fixed_dictionaries(required, optional=optional))
    return name, {"template": name, **body}


@settings(max_examples=80, deadline=None)
@given(case=requests(), family=st.sampled_from(sorted(SPECS)))
def test_every_valid_request_builds_a_graph_the_backend_accepts(
    object_info: ObjectInfo, case: tuple[str, dict[str, Any]], family: str
) -> None:
    name, body = case
    template = get_template(name)
    request = template.parse(body)
    loras = lora_refs(len(body["loras"]))
    built = template.build(request, SPECS[family], loras=loras, filename_prefix="job")
    assert validate_built(built, object_info) == []
    assert all(key in built.graph[node_id]["inputs"] for node_id, key in built.field_map)
    assert ui_to_api(api_to_ui(built.graph, object_info), object_info) == built.graph
