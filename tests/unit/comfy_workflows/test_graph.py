"""The typed graph builder."""

from __future__ import annotations

import pytest

from comfy_workflows.graph import Field, GraphBuilder, GraphError, Output
from comfy_workflows.nodes import NodeSpec


def _small_graph() -> GraphBuilder:
    g = GraphBuilder()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="a.safetensors")
    text = g.add("CLIPTextEncode", text=Field("a cat", "prompt"), clip=ckpt.clip)
    latent = g.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    sampler = g.add(
        "KSampler",
        model=ckpt.model,
        seed=Field(7, "seed"),
        steps=20,
        cfg=7.0,
        sampler_name="euler",
        scheduler="normal",
        positive=text.out(0),
        negative=text.out(0),
        latent_image=latent.out("LATENT"),
        denoise=1.0,
    )
    image = g.add("VAEDecode", samples=sampler.out(0), vae=ckpt.out(2))
    g.add("SaveImage", images=image.out(0), filename_prefix="job")
    return g


def test_ids_are_assigned_in_insertion_order_and_links_serialise_as_id_and_index() -> None:
    api = _small_graph().to_api()
    assert list(api) == ["1", "2", "3", "4", "5", "6"]
    assert api["2"] == {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a cat", "clip": ["1", 1]},
        "_meta": {"title": "CLIP Text Encode (Prompt)"},
    }
    assert api["4"]["inputs"]["latent_image"] == ["3", 0]
    assert api["5"]["inputs"]["vae"] == ["1", 2]


def test_same_steps_give_the_same_graph() -> None:
    assert _small_graph().to_api() == _small_graph().to_api()


def test_outputs_by_attribute_name_type_and_index_agree() -> None:
    g = GraphBuilder()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="a")
    assert ckpt.vae == ckpt.out("VAE") == ckpt.out(2) == Output("1", 2, "VAE")
    assert ckpt.model.type == "MODEL"


def test_field_values_are_recorded_in_the_field_map() -> None:
    g = _small_graph()
    assert g.field_map == {("2", "text"): "prompt", ("4", "seed"): "seed"}
    assert g.to_api()["4"]["inputs"]["seed"] == 7


def test_output_nodes_come_from_the_declared_specs() -> None:
    assert _small_graph().output_node_ids() == ["6"]


def test_a_link_of_the_wrong_type_is_refused_at_build_time() -> None:
    g = GraphBuilder()
    latent = g.add("EmptyLatentImage", width=64, height=64, batch_size=1)
    with pytest.raises(GraphError, match="takes CONDITIONING, got LATENT"):
        g.add("KSampler", positive=latent.out(0))


def test_a_link_to_an_undeclared_socket_is_refused() -> None:
    g = GraphBuilder()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="a")
    with pytest.raises(GraphError, match="no linked input named 'clip'"):
        g.add("VAEDecode", clip=ckpt.clip)


def test_a_handle_from_another_builder_is_refused() -> None:
    other = GraphBuilder().add("CheckpointLoaderSimple", ckpt_name="a")
    g = GraphBuilder()
    g.add("CheckpointLoaderSimple", ckpt_name="b")
    with pytest.raises(GraphError, match="another graph"):
        g.add("CLIPTextEncode", text="x", clip=other.clip)


def test_passing_a_node_instead_of_an_output_is_refused() -> None:
    g = GraphBuilder()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="a")
    with pytest.raises(GraphError, match="pass an output"):
        g.add("CLIPTextEncode", text="x", clip=ckpt)  # type: ignore[arg-type]


def test_unknown_output_names_and_indices_are_errors() -> None:
    g = GraphBuilder()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="a")
    with pytest.raises(GraphError):
        ckpt.out(3)
    with pytest.raises(GraphError):
        ckpt.out("LATENT")
    with pytest.raises(AttributeError):
        _ = ckpt.latent


def test_undeclared_classes_are_reachable_by_index_without_type_checks() -> None:
    g = GraphBuilder()
    custom = g.add("SomeCustomNode", value=3)
    decoded = g.add("VAEDecode", samples=custom.out(0), vae=custom.out(1))
    assert custom.out(1).type is None
    assert g.to_api()[decoded.id]["inputs"] == {"samples": ["1", 0], "vae": ["1", 1]}
    with pytest.raises(GraphError, match="use an index"):
        custom.out("LATENT")


def test_custom_specs_drive_titles_and_type_checks() -> None:
    specs = {"Src": NodeSpec("Src", "Source", outputs=(("out", "FOO"),)), "Dst": NodeSpec("Dst", "Sink", {"x": "BAR"})}
    g = GraphBuilder(specs)
    src = g.add("Src")
    assert g.to_api()["1"]["_meta"]["title"] == "Source"
    with pytest.raises(GraphError, match="takes BAR, got FOO"):
        g.add("Dst", x=src.out(0))


def test_values_other_than_literals_outputs_and_fields_are_refused() -> None:
    g = GraphBuilder()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name="a")
    with pytest.raises(GraphError, match="unsupported value"):
        g.add("CLIPTextEncode", text=ckpt.out)  # type: ignore[arg-type]


def test_to_api_returns_copies() -> None:
    g = _small_graph()
    first = g.to_api()
    first["2"]["inputs"]["clip"][0] = "99"
    assert g.to_api()["2"]["inputs"]["clip"] == ["1", 1]


def test_explicit_titles_win() -> None:
    g = GraphBuilder()
    g.add("CLIPTextEncode", title="Positive", text="x")
    assert g.to_api()["1"]["_meta"] == {"title": "Positive"}
