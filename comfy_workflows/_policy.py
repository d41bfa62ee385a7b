"""Policy checks for raw workflows submitted by users: a node-class allowlist, URLs in strings, file inputs.

- Node classes: only those of the allowlist.
- URLs: every word of every string input that is a URL (``scheme://...``, or scheme-less ``//host``, with
  backslashes read as slashes the way browsers and HTTP libraries read them) is parsed with
  :func:`urllib.parse.urlsplit`; it must be http(s) and its host, IP literals compared in their canonical
  spelling, must be allowlisted. Parsing replaces pattern matching, which missed ``//169.254.169.254/x``
  and ``http:\\\\host``.
- File inputs of loaders (combos that list uploaded files, such as ``LoadImage.image``): a value must be a
  plain file name that the backend lists for that input or that this request uploaded; never a path with
  a separator, ``..``, or an absolute path (ComfyUI would otherwise be asked to open ``../../etc/passwd``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from comfy_workflows.issues import IssueKind, ValidationIssue
from comfy_workflows.object_info import ObjectInfo

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

WEB_SCHEMES = frozenset({"http", "https"})
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+.-")
_TOKEN_EDGES = "\"'<>()[]{},;"


def canonical_host(host: str) -> str:
    """A host as a resolver sees it: lower case, no trailing dot, an IP literal in its one canonical spelling
    (``0x7f.1``, ``2130706433`` and ``127.0.0.1`` are one address; ``[::ffff:a9fe:a9fe]`` is 169.254.169.254)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass(frozen=True)
class RemoteReference:
    """A URL found in a string: its scheme (empty for ``//host``) and canonical host (None when it names none)."""

    text: str
    scheme: str
    host: str | None


def _as_url(word: str) -> str | None:
    """The word as a URL to parse, when it is one: ``scheme://...`` or scheme-less ``//host``."""
    word = word.strip(_TOKEN_EDGES).replace("\\", "/")
    if word.startswith("//"):
        return word
    scheme, sep, rest = word.partition(":")
    if sep and rest.startswith("//") and scheme[:1].isalpha() and set(scheme.lower()) <= _SCHEME_CHARS:
        return word
    return None


def remote_references(text: str) -> list[RemoteReference]:
    """Every URL in ``text`` (its whitespace-separated words), parsed with :func:`urllib.parse.urlsplit`."""
    found = []
    for word in text.split():
        url = _as_url(word)
        if url is None:
            continue
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # unparseable (a broken IPv6 literal, a bad port): remote, host unknown
            found.append(RemoteReference(word, "", "?"))
            continue
        found.append(RemoteReference(word, parts.scheme.lower(), canonical_host(host) if host else None))
    return found


@dataclass(frozen=True)
class RawWorkflowPolicy:
    """What a user-submitted workflow may use."""

    allowed_classes: frozenset[str] = DEFAULT_ALLOWED_CLASSES
    """Node classes it may contain; any other class is rejected."""
    allowed_url_hosts: frozenset[str] = field(default_factory=frozenset)
    """Hosts that http(s) URLs in string inputs may point at (a host also allows its subdomains)."""

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` is (a subdomain of) an allowlisted host; IP literals compare in canonical form."""
        host = canonical_host(host)
        allowed = {canonical_host(h) for h in self.allowed_url_hosts}
        return any(host == h or host.endswith("." + h) for h in allowed)

    def refusal(self, ref: RemoteReference) -> str | None:
        """Why a URL may not appear in a submitted workflow (None when it may)."""
        if ref.scheme not in WEB_SCHEMES:
            return f"refers to {ref.text!r}: only http(s) URLs to allowed hosts may appear"
        if ref.host is None or not self.host_allowed(ref.host):
            return f"refers to {ref.host!r}, which is not an allowed host"
        return None


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


def policy_issues(graph: Mapping[str, Any], policy: RawWorkflowPolicy) -> list[ValidationIssue]:
    """Issues for node classes outside the allowlist and URLs that are not http(s) to an allowed host."""
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
                for ref in remote_references(text):
                    reason = policy.refusal(ref)
                    if reason is not None:
                        message = f"input {name!r} {reason}"
                        issues.append(
                            ValidationIssue(IssueKind.REMOTE_URL, message, str(node_id), class_type, str(name))
                        )
    return issues


NOT_OFFERED = "is neither offered by the backend nor uploaded with this request"


def file_name_problem(value: str) -> str | None:
    """Why ``value`` is not a plain file name (None when it is one)."""
    if not value or value in (".", ".."):
        return "is not a file name"
    if "/" in value or "\\" in value:
        return "is a path; give a plain file name"
    if value.startswith("~") or (len(value) > 1 and value[1] == ":" and value[0].isalpha()):
        return "is an absolute path; give a plain file name"
    if ".." in value:
        return "contains '..'; give a plain file name"
    return None


def file_input_issues(
    graph: Mapping[str, Any],
    info: ObjectInfo,
    uploaded: Collection[str] = (),
    skip: Collection[tuple[str, str]] = (),
) -> list[ValidationIssue]:
    """Issues for file inputs of loaders: each value a plain file name the backend lists or ``uploaded`` has.

    ``skip`` names ``(node_id, input)`` pairs whose values come from each request (registered templates'
    image fields), checked when the request is rendered.
    """
    issues: list[ValidationIssue] = []
    for node_id, node in graph.items():
        node_def = info.node(node.get("class_type", "")) if isinstance(node, Mapping) else None
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if node_def is None or not isinstance(inputs, Mapping):
            continue
        for input_def in node_def.inputs:
            value = inputs.get(input_def.name)
            if not input_def.is_upload_list or not isinstance(value, str) or (str(node_id), input_def.name) in skip:
                continue
            problem = file_name_problem(value)
            kind = IssueKind.FILE_PATH
            if problem is None and value not in uploaded and not input_def.offers(value):
                problem, kind = (
                    "is neither offered by the backend nor uploaded with this request",
                    IssueKind.VALUE_NOT_IN_LIST,
                )
            if problem is not None:
                message = f"{input_def.name} {value!r} {problem}"
                issues.append(ValidationIssue(kind, message, str(node_id), node_def.class_type, input_def.name))
    return issues
