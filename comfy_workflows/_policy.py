"""Policy checks for raw workflows submitted by users: a node-class allowlist and remote URLs in strings."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from comfy_workflows.issues import IssueKind, ValidationIssue

DEFAULT_ALLOWED_CLASSES = frozenset(
    [
        "CheckpointLoaderSimple",
        "UNETLoader",
        "DualCLIPLoader",
        "CLIPLoader",
        "VAELoader",
        "LoraLoader",
        "LoraLoaderModelOnly",
        "CLIPSetLastLayer",
        "CLIPTextEncode",
        "CLIPTextEncodeSDXL",
        "CLIPTextEncodeSDXLRefiner",
        "CLIPTextEncodeFlux",
        "FluxGuidance",
        "ModelSamplingFlux",
        "ConditioningCombine",
        "ConditioningConcat",
        "ConditioningAverage",
        "ConditioningSetArea",
        "ConditioningSetMask",
        "ConditioningZeroOut",
        "ConditioningSetTimestepRange",
        "EmptyLatentImage",
        "EmptySD3LatentImage",
        "LatentUpscale",
        "LatentUpscaleBy",
        "LatentFromBatch",
        "RepeatLatentBatch",
        "LatentComposite",
        "SetLatentNoiseMask",
        "KSampler",
        "KSamplerAdvanced",
        "SamplerCustom",
        "SamplerCustomAdvanced",
        "BasicGuider",
        "CFGGuider",
        "RandomNoise",
        "KSamplerSelect",
        "BasicScheduler",
        "VAEDecode",
        "VAEEncode",
        "VAEDecodeTiled",
        "VAEEncodeTiled",
        "VAEEncodeForInpaint",
        "LoadImage",
        "LoadImageMask",
        "ImageScale",
        "ImageScaleBy",
        "ImageScaleToTotalPixels",
        "ImageInvert",
        "ImageCrop",
        "ImagePadForOutpaint",
        "ImageBatch",
        "UpscaleModelLoader",
        "ImageUpscaleWithModel",
        "ControlNetLoader",
        "ControlNetApplyAdvanced",
        "InvertMask",
        "SolidMask",
        "MaskToImage",
        "ImageToMask",
        "SaveImage",
        "PreviewImage",
        "PrimitiveInt",
        "PrimitiveFloat",
        "PrimitiveString",
        "PrimitiveStringMultiline",
        "PrimitiveBoolean",
    ]
)
"""Core ComfyUI nodes for image generation that read only the backend's own models and uploaded images."""

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


@dataclass(frozen=True)
class RawWorkflowPolicy:
    """What a user-submitted workflow may use."""

    allowed_classes: frozenset[str] = DEFAULT_ALLOWED_CLASSES
    """Node classes it may contain; any other class is rejected."""
    allowed_url_hosts: frozenset[str] = field(default_factory=frozenset)
    """Hosts that URLs in string inputs may point at (a host also allows its subdomains)."""

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` is (a subdomain of) an allowlisted host."""
        host = host.lower().rstrip(".")
        return any(host == h.lower() or host.endswith("." + h.lower()) for h in self.allowed_url_hosts)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int:
            return  # a link, not text
        for item in value:
            yield from _strings(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)


def remote_hosts(text: str) -> list[str]:
    """Hosts of the URLs in ``text`` that name a host (``file:///x`` names none)."""
    hosts = []
    for match in _URL.finditer(text):
        try:
            host = urlsplit(match.group(0)).hostname
        except ValueError:
            host = match.group(0)  # unparseable (e.g. a broken IPv6 literal): treat the whole thing as remote
        if host:
            hosts.append(host)
    return hosts


def policy_issues(graph: Mapping[str, Any], policy: RawWorkflowPolicy) -> list[ValidationIssue]:
    """Issues for node classes outside the allowlist and URLs to hosts outside the host allowlist."""
    issues: list[ValidationIssue] = []
    for node_id, node in graph.items():
        if not isinstance(node, Mapping):
            continue
        class_type = node.get("class_type")
        if isinstance(class_type, str) and class_type not in policy.allowed_classes:
            message = f"node class {class_type!r} is not allowed in submitted workflows"
            issues.append(ValidationIssue(IssueKind.CLASS_NOT_ALLOWED, message, str(node_id), class_type))
        inputs = node.get("inputs")
        if not isinstance(inputs, Mapping):
            continue
        for name, value in inputs.items():
            for text in _strings(value):
                for host in remote_hosts(text):
                    if policy.host_allowed(host):
                        continue
                    message = f"input {name!r} refers to {host!r}, which is not an allowed host"
                    issues.append(ValidationIssue(IssueKind.REMOTE_URL, message, str(node_id), class_type, str(name)))
    return issues
