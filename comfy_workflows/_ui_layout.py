"""Execution order and a left-to-right column layout for the UI (graph-editor) format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

COLUMN_WIDTH = 380
NODE_WIDTH = 320
ROW_GAP = 40
MARGIN = 50
_TITLE_HEIGHT = 30
_SLOT_HEIGHT = 22
_WIDGET_HEIGHT = 26
_TEXT_WIDGET_HEIGHT = 90


def topological_order(deps: Mapping[int, Sequence[int]]) -> list[int]:
    """Node ids so that every node comes after the nodes it depends on (ties by id).

    ``deps`` maps each node to the nodes it takes links from. Raises ValueError on a cycle.
    """
    remaining = {node: {d for d in parents if d in deps} for node, parents in deps.items()}
    order: list[int] = []
    ready = sorted(node for node, parents in remaining.items() if not parents)
    while ready:
        node = ready.pop(0)
        order.append(node)
        newly_ready = []
        for other, parents in remaining.items():
            if node in parents:
                parents.discard(node)
                if not parents:
                    newly_ready.append(other)
        ready = sorted(ready + newly_ready)
    if len(order) != len(deps):
        raise ValueError("the workflow has a dependency cycle")
    return order


def depths(order: Sequence[int], deps: Mapping[int, Sequence[int]]) -> dict[int, int]:
    """Column of each node: 0 for nodes without links in, else one more than its deepest source."""
    depth: dict[int, int] = {}
    for node in order:
        depth[node] = max((depth[d] + 1 for d in deps[node] if d in depth), default=0)
    return depth


def node_height(slots: int, widgets: int, text_widgets: int) -> int:
    """A height that fits the node's slots and widgets in the editor."""
    return (
        _TITLE_HEIGHT
        + _SLOT_HEIGHT * slots
        + _WIDGET_HEIGHT * (widgets - text_widgets)
        + _TEXT_WIDGET_HEIGHT * text_widgets
    )


def positions(order: Sequence[int], depth: Mapping[int, int], heights: Mapping[int, int]) -> dict[int, list[int]]:
    """Top-left corner of each node: one column per depth, nodes stacked in execution order."""
    next_y: dict[int, int] = {}
    result: dict[int, list[int]] = {}
    for node in order:
        column = depth[node]
        y = next_y.get(column, MARGIN)
        result[node] = [MARGIN + column * COLUMN_WIDTH, y]
        next_y[column] = y + heights[node] + ROW_GAP
    return result
