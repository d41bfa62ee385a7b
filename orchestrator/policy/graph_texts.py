# SPDX-License-Identifier: Apache-2.0
"""The texts an API-format ComfyUI graph carries, for the content policy.

Every string input of every node counts, except text that reaches only samplers' ``negative`` inputs: a
negative prompt names what to steer away from, so naming it is not refused. A node's texts are exempt when
every path from its outputs ends in an input called ``negative`` (through any conditioning or string nodes
on the way); one path that ends anywhere else (a positive input, an output node, nowhere) makes them count.
Data URLs (images sent with the request) are not text. Pure: the graph is only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NEGATIVE_INPUT = "negative"


@dataclass(frozen=True)
class GraphText:
    """One string input of a node."""

    node_id: str
    input_name: str
    text: str


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _consumers(graph: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Node id -> the (node id, input name) pairs its outputs feed."""
    consumers: dict[str, list[tuple[str, str]]] = {}
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if _is_link(value):
                consumers.setdefault(value[0], []).append((str(node_id), str(name)))
    return consumers


class _NegativeOnly:
    """Whether a node's outputs end only in ``negative`` inputs (memoised per node)."""

    def __init__(self, graph: Mapping[str, Any]) -> None:
        self._consumers = _consumers(graph)
        self._known: dict[str, bool] = {}

    def __call__(self, node_id: str, visiting: frozenset[str] = frozenset()) -> bool:
        if node_id in self._known:
            return self._known[node_id]
        consumers = self._consumers.get(node_id, [])
        if not consumers or node_id in visiting:
            return False
        answer = all(name == NEGATIVE_INPUT or self(target, visiting | {node_id}) for target, name in consumers)
        self._known[node_id] = answer
        return answer


def graph_texts(graph: Mapping[str, Any]) -> list[GraphText]:
    """The string inputs the policy checks, in node order (see the module's docstring)."""
    negative_only = _NegativeOnly(graph)
    texts: list[GraphText] = []
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        strings = [(name, value) for name, value in inputs.items() if isinstance(value, str) and value]
        if not strings or negative_only(str(node_id)):
            continue
        texts.extend(
            GraphText(str(node_id), str(name), value) for name, value in strings if not value.startswith("data:")
        )
    return texts
