# SPDX-License-Identifier: Apache-2.0
"""Accepting a submitted workflow (``{workflow, inputs?}``) for advanced users.

The graph may be in API format or in the editor's UI format (converted with the backend's ``/object_info``).
``inputs`` sets values on it (``{node_id: {input: value}}``); a data URL set on a LoadImage ``image`` input is
an image to upload. The graph is then checked like a template's, plus the node-class allowlist, the
allowed URL hosts and the loaders' file inputs (a file the backend lists, or one this request uploads);
errors name ``workflow.<node>.inputs.<input>`` or ``inputs.<node>.<input>``. Every
SaveImage writes under the job's own file name prefix.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import Any

from comfy_workflows.ui_format import UIFormatError, ui_to_api
from comfy_workflows.validation import IssueKind, ValidationIssue, validate_raw_workflow
from orchestrator.errors import ValidationFailed
from orchestrator.generation.checking import GraphChecker
from orchestrator.generation.content import check_graph, mapped, workflow_input
from orchestrator.generation.generation_services import GenerationServices
from orchestrator.generation.init_images import InitImage, InitImageError, parse_init_image
from orchestrator.generation.payload import GenerationPayload, Upload, filename_prefix, storage_prefix
from orchestrator.generation.schemas import MAX_WORKFLOW_NODES, WorkflowBody
from orchestrator.policy import ContentGate, Context
from orchestrator.storage import Storage

_POLICY_KINDS = frozenset({IssueKind.CLASS_NOT_ALLOWED, IssueKind.REMOTE_URL, IssueKind.FILE_PATH})
_IMAGE_LOADERS = frozenset({"LoadImage", "LoadImageMask", "AtelierImageInput"})
"""Nodes whose ``image`` takes an upload (the node pack's image marker loads its image like LoadImage)."""
_SEED_INPUTS = ("seed", "noise_seed")
_MODEL_INPUTS = {"ckpt_name": "checkpoints", "lora_name": "loras", "unet_name": "diffusion_models"}


def raw_issue_errors(issues: Iterable[ValidationIssue], fields: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Issues of a submitted graph, naming ``inputs.…`` where a value came from ``inputs``, else the node."""
    errors: list[dict[str, Any]] = []
    for issue in sorted(issues, key=lambda i: i.kind not in _POLICY_KINDS):
        if issue.node_id is not None and issue.input_name is not None:
            field = fields.get((issue.node_id, issue.input_name), f"workflow.{issue.node_id}.inputs.{issue.input_name}")
        elif issue.node_id is not None:
            field = f"workflow.{issue.node_id}"
        else:
            field = "workflow"
        error = {"field": field, "reason": issue.message, "type": issue.kind.value}
        if error not in errors:
            errors.append(error)
    return errors


def _is_ui_format(graph: dict[str, Any]) -> bool:
    return isinstance(graph.get("nodes"), list) and "links" in graph


def graph_facts(graph: dict[str, Any]) -> tuple[int | None, list[str], dict[str, list[str]]]:
    """The first seed, the model files loaded (affinity key) and the files needed per model folder."""
    seed: int | None = None
    names: list[str] = []
    required: dict[str, list[str]] = {}
    for node in graph.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if seed is None and name in _SEED_INPUTS and type(value) is int:
                seed = value
            if name in _MODEL_INPUTS and isinstance(value, str):
                names.append(value)
                if _MODEL_INPUTS[name] in ("checkpoints", "loras"):
                    required.setdefault(_MODEL_INPUTS[name], []).append(value)
    return seed, names, required


class _Inputs:
    """Applies ``inputs`` to a graph, collecting image uploads and errors."""

    def __init__(self, services: GenerationServices, job_id: uuid.UUID, graph: dict[str, Any]) -> None:
        self.services = services
        self.job_id = job_id
        self.graph = graph
        self.fields: dict[tuple[str, str], str] = {}
        self.images: list[tuple[str, str, InitImage]] = []
        self.errors: list[dict[str, Any]] = []

    def apply(self, inputs: dict[str, dict[str, Any]]) -> None:
        for node_id, values in inputs.items():
            node = self.graph.get(node_id)
            if not isinstance(node, dict):
                self.errors.append({"field": f"inputs.{node_id}", "reason": f"the workflow has no node {node_id!r}"})
                continue
            node_inputs = node.setdefault("inputs", {})
            for name, value in values.items():
                field = f"inputs.{node_id}.{name}"
                self.fields[(node_id, name)] = field
                if isinstance(value, str) and value.startswith("data:") and node.get("class_type") in _IMAGE_LOADERS:
                    self._image(node_id, name, value, field)
                    continue
                node_inputs[name] = value

    def _image(self, node_id: str, name: str, value: str, field: str) -> None:
        settings = self.services.settings
        try:
            image = parse_init_image(
                value, max_bytes=settings.init_image_max_bytes, max_pixels=settings.init_image_max_pixels
            )
        except InitImageError as exc:
            self.errors.append({"field": field, "reason": str(exc)})
            return
        filename = f"atelier_{self.job_id}_{node_id}.{image.extension}"
        self.graph[node_id]["inputs"][name] = filename
        self.images.append((node_id, name, image))

    def uploaded_names(self) -> frozenset[str]:
        """The file names the images of this request are uploaded as (loaders may name them)."""
        return frozenset(self.graph[node_id]["inputs"][name] for node_id, name, _ in self.images)

    async def store(self, storage: Storage) -> list[Upload]:
        """Keep the images in storage; what the worker uploads to the backend."""
        uploads = []
        for node_id, name, image in self.images:
            key = f"{storage_prefix(self.job_id)}/input-{node_id}.{image.extension}"
            await storage.put(key, image.data, image.content_type)
            uploads.append(
                Upload(
                    key=key,
                    filename=self.graph[node_id]["inputs"][name],
                    sha256=image.sha256,
                    targets=[(node_id, name)],
                    field=f"inputs.{node_id}.{name}",
                )
            )
        return uploads


async def _api_graph(checker: GraphChecker, workflow: dict[str, Any]) -> dict[str, Any]:
    """A copy of the submitted graph in API format (converted from the editor's format when it is that)."""
    graph = copy.deepcopy(workflow)
    if _is_ui_format(graph):
        try:
            graph = ui_to_api(graph, await checker.info(checker.ready_backends()[0]))
        except UIFormatError as exc:
            raise ValidationFailed([{"field": "workflow", "reason": f"cannot read the editor format: {exc}"}]) from exc
    if len(graph) > MAX_WORKFLOW_NODES:
        raise ValidationFailed([{"field": "workflow", "reason": f"more than {MAX_WORKFLOW_NODES} nodes"}])
    return graph


async def accept_workflow(
    services: GenerationServices, storage: Storage, job_id: uuid.UUID, body: WorkflowBody, gate: ContentGate
) -> GenerationPayload:
    """Everything up to the job row for a submitted workflow (422 naming the field, 503 without a backend).
    Every string input goes past the content policy, except text that reaches only a sampler's negative."""
    if not services.settings.raw_workflows:
        raise ValidationFailed([{"field": "workflow", "reason": "this service does not accept submitted workflows"}])
    checker = services.backends().checker
    graph = await _api_graph(checker, body.workflow)
    applied = _Inputs(services, job_id, graph)
    applied.apply(body.inputs)
    if applied.errors:
        raise ValidationFailed(applied.errors)
    await check_graph(gate, graph, Context.WORKFLOW_INPUT, mapped(applied.fields, workflow_input))
    for node in graph.values():
        if isinstance(node, dict) and node.get("class_type") == "SaveImage" and isinstance(node.get("inputs"), dict):
            node["inputs"]["filename_prefix"] = filename_prefix(job_id)
    policy = services.policy
    uploaded = applied.uploaded_names()
    outcome = await checker.check(lambda info: validate_raw_workflow(graph, info, policy, uploaded))
    if outcome.issues:
        raise ValidationFailed(raw_issue_errors(outcome.issues, applied.fields))
    uploads = await applied.store(storage)
    seed, names, required = graph_facts(graph)
    params = {
        "inputs": {
            n: {k: v for k, v in vals.items() if not str(v).startswith("data:")} for n, vals in body.inputs.items()
        }
    }
    return GenerationPayload(
        template=None,
        params=params,
        graph=graph,
        output_node_ids=None,
        seed=seed,
        model_key=names,
        required_models=required,
        uploads=uploads,
        validated_on=outcome.backend,
        adult_content=gate.adult_content,
    )
