# SPDX-License-Identifier: Apache-2.0
"""Which nodes the stand-in runs, in which order, and which come from cache — ComfyUI's rules.

* A node's cache key is its class and inputs, with links replaced by the linked node's key,
  so identical sub-graphs are cached whatever their node ids.
* The execution list is built from the output nodes by a depth-first walk over the inputs
  (a stack, so later inputs first); cached nodes are left out (cached output nodes stay, and
  only re-send their ``executed``). Among the nodes ready to run, ComfyUI prefers an output
  node, then a node feeding an output node, then one two steps from an output node, and
  otherwise the first in the order the walk found them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.standin.comfyui.validation import is_link


def cache_keys(prompt: dict[str, Any]) -> dict[str, str]:
    """Cache key of every node of ``prompt``."""
    keys: dict[str, str] = {}

    def key(node_id: str, trail: frozenset[str]) -> str:
        if node_id in keys:
            return keys[node_id]
        if node_id in trail:
            raise ValueError(f"dependency cycle at node {node_id}")
        node = prompt[node_id]
        parts: list[Any] = [node["class_type"]]
        for name in sorted(node.get("inputs") or {}):
            value = node["inputs"][name]
            if is_link(value) and value[0] in prompt:
                parts.append([name, key(value[0], trail | {node_id}), value[1]])
            else:
                parts.append([name, value])
        keys[node_id] = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
        return keys[node_id]

    for node_id in prompt:
        key(node_id, frozenset())
    return keys


class ExecutionList:
    """Nodes still to run for one prompt; :meth:`next` picks the one ComfyUI would run next."""

    def __init__(self, prompt: dict[str, Any], outputs: list[str], cached: set[str], is_output: Any) -> None:
        self._prompt = prompt
        self._cached = cached
        self._is_output = is_output
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, set[str]] = {}
        for output in outputs:
            self._add(output)

    def _add(self, start: str) -> None:
        stack = [start]
        links: list[tuple[str, str]] = []
        while stack:
            node_id = stack.pop()
            if node_id in self.pending:
                continue
            self.pending[node_id] = True
            self.block_count[node_id] = 0
            self.blocking[node_id] = set()
            for value in (self._prompt[node_id].get("inputs") or {}).values():
                if is_link(value) and value[0] not in self._cached:
                    stack.append(value[0])
                    links.append((value[0], node_id))
        for source, target in links:
            if target not in self.blocking[source]:
                self.blocking[source].add(target)
                self.block_count[target] += 1

    def next(self) -> str | None:
        """Remove and return the next node to run (None when done)."""
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            return None
        node_id = self._pick(ready)
        del self.pending[node_id]
        for target in self.blocking[node_id]:
            self.block_count[target] -= 1
        return node_id

    def _pick(self, ready: list[str]) -> str:
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(t) for t in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            if any(self._is_output(t2) for t in self.blocking[node_id] for t2 in self.blocking[t]):
                return node_id
        return ready[0]
