"""A small typed builder for ComfyUI API-format graphs.

Nodes are added by ``class_type`` with their inputs; each added node is a :class:`NodeHandle` whose outputs
are :class:`Output` handles (``ckpt.model``, ``ckpt.out("CLIP")``, ``ckpt.out(2)``) that later nodes take as
inputs. The builder assigns node ids ``"1"``, ``"2"``, ... in insertion order, so the same build steps always
give the same graph. Where a node's input and output types are declared (:data:`comfy_workflows.nodes.NODE_SPECS`
by default), links are type-checked when they are made.

Values that come from a request can be wrapped in :class:`Field` so that the builder records which request field
fed which ``(node id, input name)``; see :attr:`GraphBuilder.field_map`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from comfy_workflows.nodes import NODE_SPECS, NodeSpec

Scalar: TypeAlias = str | int | float | bool
"""A literal input value of an API-format graph."""

ApiGraph: TypeAlias = dict[str, dict[str, Any]]
"""An API-format graph: ``{node_id: {"class_type", "inputs", "_meta": {"title"}}}``."""

FieldMap: TypeAlias = dict[tuple[str, str], str]
"""``(node_id, input_name)`` -> the request field path that supplied the value, e.g. ``"loras[1].lora"``."""


class GraphError(ValueError):
    """A graph was put together wrongly (unknown output, mismatched link type, foreign handle)."""


@dataclass(frozen=True)
class Output:
    """One output slot of a node; pass it as an input value to link to it."""

    node_id: str
    index: int
    type: str | None
    """The ComfyUI type name (``MODEL``, ``LATENT``...), or None where the node's outputs are not declared."""
    owner: object = field(default=None, compare=False, repr=False)
    """The builder that made the handle (None for a hand-made handle)."""

    def to_link(self) -> list[str | int]:
        """The API-format link: ``[node_id, output_index]``."""
        return [self.node_id, self.index]


@dataclass(frozen=True)
class Field:
    """A literal input value together with the request field path it came from."""

    value: Scalar
    path: str


InputValue: TypeAlias = Scalar | Output | Field


class NodeHandle:
    """A node added to a :class:`GraphBuilder`; gives access to its outputs.

    Outputs can be reached by index (``node.out(0)``), by declared output name or type name, case-insensitive
    (``node.out("clip")``, ``node.out("CLIP")``), or as attributes (``node.clip``).
    """

    def __init__(self, node_id: str, class_type: str, spec: NodeSpec | None, builder_key: object) -> None:
        self.id = node_id
        self.class_type = class_type
        self.spec = spec
        self._builder_key = builder_key

    def out(self, key: int | str) -> Output:
        """The output handle for ``key`` (an index, an output name, or a type name)."""
        if isinstance(key, int):
            return self._by_index(key)
        if self.spec is None:
            raise GraphError(f"{self.class_type} has no declared outputs; use an index")
        wanted = key.lower()
        for index, (name, type_name) in enumerate(self.spec.outputs):
            if name.lower() == wanted:
                return Output(self.id, index, type_name, self._builder_key)
        matches = [i for i, (_, type_name) in enumerate(self.spec.outputs) if type_name.lower() == wanted]
        if len(matches) == 1:
            return Output(self.id, matches[0], self.spec.outputs[matches[0]][1], self._builder_key)
        raise GraphError(f"{self.class_type} (node {self.id}) has no single output named {key!r}")

    def _by_index(self, index: int) -> Output:
        if self.spec is None:
            if index < 0:
                raise GraphError(f"output index must not be negative, got {index}")
            return Output(self.id, index, None, self._builder_key)
        if not 0 <= index < len(self.spec.outputs):
            raise GraphError(f"{self.class_type} has {len(self.spec.outputs)} outputs; no index {index}")
        return Output(self.id, index, self.spec.outputs[index][1], self._builder_key)

    def __getattr__(self, name: str) -> Output:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.out(name)
        except GraphError as exc:
            raise AttributeError(str(exc)) from exc

    def __repr__(self) -> str:
        return f"NodeHandle(id={self.id!r}, class_type={self.class_type!r})"


@dataclass
class _Node:
    class_type: str
    title: str
    inputs: dict[str, Any] = field(default_factory=dict)


class GraphBuilder:
    """Builds an API-format graph node by node; ids are assigned in insertion order."""

    def __init__(self, specs: Mapping[str, NodeSpec] = NODE_SPECS) -> None:
        self._specs = specs
        self._nodes: dict[str, _Node] = {}
        self._handles: dict[str, NodeHandle] = {}
        self._field_map: FieldMap = {}
        self._key = object()

    def add(self, class_type: str, /, *, title: str | None = None, **inputs: InputValue) -> NodeHandle:
        """Add a node of ``class_type`` with ``inputs``; returns its handle.

        Input values are literals, :class:`Field` (a literal with its request field path) or :class:`Output`
        handles of nodes already in this builder. A link is checked against the declared input type.
        """
        spec = self._specs.get(class_type)
        node_id = str(len(self._nodes) + 1)
        node = _Node(class_type, title or (spec.title if spec else class_type))
        for name, value in inputs.items():
            node.inputs[name] = self._input_value(node_id, class_type, spec, name, value)
        self._nodes[node_id] = node
        handle = NodeHandle(node_id, class_type, spec, self._key)
        self._handles[node_id] = handle
        return handle

    def _input_value(self, node_id: str, class_type: str, spec: NodeSpec | None, name: str, value: InputValue) -> Any:
        if isinstance(value, Field):
            self._field_map[(node_id, name)] = value.path
            return value.value
        if isinstance(value, Output):
            self._check_link(class_type, spec, name, value)
            return value.to_link()
        if isinstance(value, NodeHandle):
            raise GraphError(f"input {name!r} of {class_type}: pass an output (e.g. node.out(0)), not a node")
        if not isinstance(value, str | int | float | bool):
            raise GraphError(f"input {name!r} of {class_type}: unsupported value {value!r}")
        return value

    def _check_link(self, class_type: str, spec: NodeSpec | None, name: str, output: Output) -> None:
        if output.owner is not None and output.owner is not self._key:
            raise GraphError(f"input {name!r} of {class_type} links to a node of another graph")
        if output.node_id not in self._nodes:
            raise GraphError(f"input {name!r} of {class_type} links to node {output.node_id}, not in this graph")
        if spec is None or output.type is None:
            return
        expected = spec.inputs.get(name)
        if expected is None:
            raise GraphError(f"{class_type} declares no linked input named {name!r}")
        if expected not in ("*", output.type):
            raise GraphError(
                f"input {name!r} of {class_type} takes {expected}, "
                f"got {output.type} from node {output.node_id} output {output.index}"
            )

    @property
    def field_map(self) -> FieldMap:
        """``(node_id, input_name)`` -> request field path, for every :class:`Field` value added so far."""
        return dict(self._field_map)

    def output_node_ids(self) -> list[str]:
        """Ids of the nodes whose declared spec marks them as output nodes (e.g. SaveImage)."""
        return [
            node_id
            for node_id, node in self._nodes.items()
            if (spec := self._specs.get(node.class_type)) is not None and spec.output_node
        ]

    def to_api(self) -> ApiGraph:
        """The API-format graph: ``{id: {"class_type", "inputs", "_meta": {"title"}}}`` (fresh copies)."""
        return {
            node_id: {
                "class_type": node.class_type,
                "inputs": {k: list(v) if isinstance(v, list) else v for k, v in node.inputs.items()},
                "_meta": {"title": node.title},
            }
            for node_id, node in self._nodes.items()
        }
