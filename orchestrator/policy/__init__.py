# SPDX-License-Identifier: Apache-2.0
"""Content policy: no job sexualises minors, NSFW follows the operator's policy, every refusal is audited.

The public surface other packages use: :func:`check_text` (pure), :class:`ContentPolicy` (the per-process
service; handlers find it under ``orchestrator.policy.feature.CONTENT_POLICY``), :class:`TextField` and
:class:`Context` to describe what is checked, and :func:`graph_texts` for the texts of a ComfyUI graph.
Nothing here imports the web layer.
"""

from orchestrator.policy.enforcement import ContentGate, ContentPolicy, ImageDecision
from orchestrator.policy.graph_texts import GraphText, graph_texts
from orchestrator.policy.rules import Context, PolicyMode, Rule, TextDecision, TextField, check_text
from orchestrator.policy.screening import ImageVerdict, blurred_copy

__all__ = [
    "ContentGate",
    "ContentPolicy",
    "Context",
    "GraphText",
    "ImageDecision",
    "ImageVerdict",
    "PolicyMode",
    "Rule",
    "TextDecision",
    "TextField",
    "blurred_copy",
    "check_text",
    "graph_texts",
]
