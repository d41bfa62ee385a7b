# SPDX-License-Identifier: Apache-2.0
"""The texts of a generation, as the content policy sees them: every string input of the graph about to be
queued, except text that reaches only a sampler's ``negative`` input (:func:`orchestrator.policy.graph_texts`),
each named by the request field it came from."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from orchestrator.policy import ContentGate, Context, TextField, graph_texts

FieldOf = Callable[[str, str], str]


def graph_fields(
    graph: Mapping[str, Any], context: Context, field_of: FieldOf, own: Collection[tuple[str, str]] = ()
) -> list[TextField]:
    """The graph's texts as policy fields; ``field_of(node_id, input_name)`` names each. ``own``: the (node id,
    input) pairs the service wrote itself (a file name prefix with the job's id), which are no one's text."""
    return [
        TextField(field_of(t.node_id, t.input_name), t.text, context)
        for t in graph_texts(graph)
        if (t.node_id, t.input_name) not in own
    ]


def mapped(fields: Mapping[tuple[str, str], str], fallback: FieldOf) -> FieldOf:
    """Names from a (node id, input) -> request field map, else ``fallback``'s."""

    def field_of(node_id: str, input_name: str) -> str:
        return fields.get((node_id, input_name)) or fallback(node_id, input_name)

    return field_of


def workflow_input(node_id: str, input_name: str) -> str:
    """How a raw workflow's input is named in errors."""
    return f"workflow.{node_id}.inputs.{input_name}"


async def check_graph(
    gate: ContentGate,
    graph: Mapping[str, Any],
    context: Context,
    field_of: FieldOf,
    extra: Sequence[TextField] = (),
    own: Collection[tuple[str, str]] = (),
) -> None:
    """Refuse (422 content-policy, recorded) when the graph's texts (but ``own``), with ``extra``, may not be
    queued."""
    await gate.check([*graph_fields(graph, context, field_of, own), *extra])
