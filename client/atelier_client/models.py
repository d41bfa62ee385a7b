# Generated from the service's OpenAPI document by `python -m orchestrator.devtools.client_models`.
# Do not edit: change the service's models and regenerate (a test checks this file is current).

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import (
    AnyUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    confloat,
    conint,
    constr,
)


class ArtifactData(BaseModel):
    """
    `job.artifact`: a file the job produced.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """
    kind: str = Field(..., title="Kind")
    """
    image | lora | sample | checkpoint
    """
    url: str = Field(..., title="Url")
    sha256: str | None = Field(None, title="Sha256")


class AuditEventOut(BaseModel):
    """
    One decision of the content policy.
    """

    id: UUID = Field(..., title="Id")
    created_at: AwareDatetime = Field(..., title="Created At")
    action: str = Field(..., title="Action")
    """
    refused (a request), blocked or blurred (a generated image), rejected (a photo).
    """
    rule: str = Field(..., title="Rule")
    context: str = Field(..., title="Context")
    owner_id: UUID | None = Field(None, title="Owner Id")
    key_id: UUID | None = Field(None, title="Key Id")
    request_id: UUID | None = Field(None, title="Request Id")
    """
    The refused request (its 422 answer names it).
    """
    job_id: UUID | None = Field(None, title="Job Id")
    fields: list[str] | None = Field(None, title="Fields")
    """
    The request fields involved.
    """
    content_sha256: str | None = Field(None, title="Content Sha256")
    """
    SHA-256 of the refused text (or of the image).
    """
    excerpt: str | None = Field(None, title="Excerpt")
    """
    The start of the refused text; never kept for minors_sexual.
    """
    detail: dict[str, Any] | None = Field(None, title="Detail")
    """
    Terms found, image score and threshold, ...
    """


class AuditList(BaseModel):
    """
    A page of the audit log, newest first.
    """

    items: list[AuditEventOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")


class BackendList(BaseModel):
    """
    The ComfyUI backends this process uses.
    """

    configured: bool = Field(..., title="Configured")
    items: list[dict[str, Any]] = Field(..., title="Items")


class CaptionOptions(BaseModel):
    """
    How training captions are written: the mode, the template and per-photo captions (which always win).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    mode: Literal["auto", "trigger", "manual"] | None = None
    """
    auto: the service's captioner describes photos without a user caption; trigger: trigger and class word (plus user captions); manual: every photo needs a user caption. Default: auto when the service has a captioner (ATELIER_CAPTIONER), else trigger.
    """
    template: constr(max_length=300) | None = Field(None, title="Template")
    """
    Pattern with {trigger}, {class} and {caption}, e.g. 'photo of {trigger}'.
    """
    per_photo: dict[str, str] | None = Field(None, title="Per Photo")
    """
    Captions by photo id (override the photo's stored caption).
    """


class CompleteRequest(BaseModel):
    """
    The presigned uploads that have finished: they are checked now, like multipart uploads.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    photo_ids: list[UUID] = Field(..., max_length=50, min_length=1, title="Photo Ids")


class ConsentIn(BaseModel):
    """
    The caller's attestations about the subject. A person subject needs both to be true.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    confirmed: bool = Field(..., title="Confirmed")
    """
    The person agreed to a LoRA being trained on their likeness.
    """
    subject_is_adult: bool = Field(..., title="Subject Is Adult")
    """
    The person is an adult.
    """
    statement: constr(max_length=2000) | None = Field(None, title="Statement")
    """
    Free text: how and when consent was given.
    """


class DeliveryOut(BaseModel):
    """
    One webhook message to one URL: its state and what went wrong last.
    """

    id: UUID = Field(..., title="Id")
    message_id: UUID = Field(..., title="Message Id")
    """
    The `webhook-id` header: the same for retries and redeliveries.
    """
    job_id: UUID = Field(..., title="Job Id")
    event: str = Field(..., title="Event")
    """
    job.succeeded, job.failed or job.cancelled.
    """
    url: str = Field(..., title="Url")
    status: Literal["pending", "delivered", "failed"] = Field(..., title="Status")
    attempts: int = Field(..., title="Attempts")
    last_error: str | None = Field(None, title="Last Error")
    created_at: AwareDatetime = Field(..., title="Created At")
    next_attempt_at: AwareDatetime | None = Field(None, title="Next Attempt At")
    """
    When a pending delivery is tried next.
    """
    delivered_at: AwareDatetime | None = Field(None, title="Delivered At")
    redelivery_of: UUID | None = Field(None, title="Redelivery Of")
    """
    The delivery this one sends again.
    """


class ErasureInfo(BaseModel):
    """
    An erasure that was requested and has not finished yet.
    """

    job_id: UUID | None = Field(..., title="Job Id")
    """
    The erasure job (events at /v1/jobs/{id}/events).
    """
    requested_at: AwareDatetime = Field(..., title="Requested At")


class EventData(BaseModel):
    """
    Fields every event's data has.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """


class Health(BaseModel):
    """
    Liveness.
    """

    status: str = Field(..., title="Status")


class ImageOut(BaseModel):
    """
    One stored image of a generation.
    """

    index: int = Field(..., title="Index")
    url: str = Field(..., title="Url")
    """
    GET it for the image (a redirect to a presigned URL with S3 storage).
    """
    sha256: str = Field(..., title="Sha256")
    width: int | None = Field(None, title="Width")
    height: int | None = Field(None, title="Height")
    size_bytes: int | None = Field(None, title="Size Bytes")


class JobError(BaseModel):
    """
    Why a job failed.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    class_: str = Field(..., alias="class", title="Class")
    """
    A stable slug clients can act on.
    """
    message: str = Field(..., title="Message")
    retryable: bool = Field(False, title="Retryable")


class LoraRequest(BaseModel):
    """
    One LoRA of a generation request, as the API client names it.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    lora: constr(min_length=1, max_length=200) = Field(..., title="Lora")
    """
    Name of a LoRA known to Atelier.
    """
    version: conint(ge=1, le=2147483647) | None = Field(None, title="Version")
    """
    Version of the LoRA to use; the latest version when absent.
    """
    strength_model: confloat(ge=-10.0, le=10.0) = Field(1.0, title="Strength Model")
    """
    How strongly the LoRA changes the diffusion model.
    """
    strength_clip: confloat(ge=-10.0, le=10.0) = Field(1.0, title="Strength Clip")
    """
    How strongly the LoRA changes the text encoder (ignored for Flux, whose LoRAs are model-only).
    """


class LoraVersionRef(BaseModel):
    """
    The LoRA version a training produced.
    """

    lora_id: UUID = Field(..., title="Lora Id")
    name: str = Field(..., title="Name")
    version: int = Field(..., title="Version")
    comfy_name: str = Field(..., title="Comfy Name")
    """
    The name ComfyUI lists it under (relative to models/loras).
    """
    sha256: str = Field(..., title="Sha256")
    file_url: str = Field(..., title="File Url")


class ModelList(BaseModel):
    """
    Models the backends offer, with family where known, and the caller's trained LoRAs.
    """

    checkpoints: list[dict[str, Any]] = Field(..., title="Checkpoints")
    catalog: list[dict[str, Any]] = Field(..., title="Catalog")
    loras: list[dict[str, Any]] = Field(..., title="Loras")


class NoopPayload(BaseModel):
    """
    A job that only reports progress: for checking the pipeline and for benchmarks.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    steps: conint(ge=0, le=10000) = Field(3, title="Steps")
    """
    How many progress events to emit.
    """
    step_ms: confloat(ge=0.0, le=60000.0) = Field(0.0, title="Step Ms")
    """
    Simulated work per step, in milliseconds.
    """
    fail_at_step: conint(ge=1, le=10000) | None = Field(None, title="Fail At Step")
    """
    Fail (not retryable) when reaching this step.
    """


class PhotoOut(BaseModel):
    """
    An accepted photo (cleaned: EXIF orientation applied, metadata stripped) or one awaiting upload.
    """

    id: UUID = Field(..., title="Id")
    subject_id: UUID = Field(..., title="Subject Id")
    status: str = Field(..., title="Status")
    """
    accepted | awaiting_upload.
    """
    original_filename: str | None = Field(None, title="Original Filename")
    content_type: str | None = Field(None, title="Content Type")
    width: int | None = Field(None, title="Width")
    height: int | None = Field(None, title="Height")
    size_bytes: int | None = Field(None, title="Size Bytes")
    sha256: str | None = Field(None, title="Sha256")
    phash: str | None = Field(None, title="Phash")
    """
    64-bit perceptual hash (hex) used to catch duplicates.
    """
    blur_score: float | None = Field(None, title="Blur Score")
    """
    Sharpness (variance of the Laplacian); higher is sharper.
    """
    face_box: list[int] | None = Field(None, title="Face Box")
    """
    [left, top, right, bottom] of the largest face found.
    """
    caption: str | None = Field(None, title="Caption")
    created_at: AwareDatetime = Field(..., title="Created At")


class PhotoVerdictOut(BaseModel):
    """
    What became of one uploaded file.
    """

    filename: str = Field(..., title="Filename")
    accepted: bool = Field(..., title="Accepted")
    photo_id: UUID | None = Field(None, title="Photo Id")
    """
    The new photo's id when accepted.
    """
    reason: str | None = Field(None, title="Reason")
    """
    When rejected: not_an_image, truncated, too_small, too_large, too_many_pixels, duplicate, no_face, too_blurry, too_many_photos, explicit_content (a person's photo the content policy refused); not_uploaded for a presigned upload that has not arrived.
    """
    message: str = Field(..., title="Message")
    duplicate_of: UUID | None = Field(None, title="Duplicate Of")
    """
    The earlier photo this one duplicates.
    """
    width: int | None = Field(None, title="Width")
    height: int | None = Field(None, title="Height")


class PolicyError(BaseModel):
    """
    One field a content-policy refusal concerns (`type` is the rule id too).
    """

    field: str = Field(..., title="Field")
    """
    The field's path: `loras[1].strength_model`, a query or path parameter name.
    """
    reason: str = Field(..., title="Reason")
    """
    What is wrong, in plain words.
    """
    type: str = Field(..., title="Type")
    """
    Machine-readable error type (`invalid` when nothing more precise is known).
    """
    rule: str = Field(..., title="Rule")
    """
    minors_sexual (refused always) or nsfw_text (per ATELIER_CONTENT_POLICY).
    """


class PresignFile(BaseModel):
    """
    A file the client is about to upload straight to storage.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    filename: constr(min_length=1, max_length=255) = Field(..., title="Filename")
    content_type: constr(pattern=r"^image/(jpeg|png|webp)$") = Field(..., title="Content Type")
    """
    image/jpeg, image/png or image/webp.
    """
    size_bytes: conint(le=2147483647, gt=0) = Field(..., title="Size Bytes")
    """
    The file's size; at most ATELIER_PHOTO_MAX_BYTES.
    """


class PresignRequest(BaseModel):
    """
    Ask for presigned PUT URLs (S3 storage only).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    files: list[PresignFile] = Field(..., max_length=50, min_length=1, title="Files")


class PresignedUpload(BaseModel):
    """
    Where to PUT one file (send the same Content-Type), and the photo id to complete it with.
    """

    photo_id: UUID = Field(..., title="Photo Id")
    filename: str = Field(..., title="Filename")
    url: str = Field(..., title="Url")
    method: str = Field("PUT", title="Method")
    headers: dict[str, str] = Field(..., title="Headers")


class PreviewData(BaseModel):
    """
    `job.preview`: a preview image of a running generation.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """
    url: str = Field(..., title="Url")
    """
    Where the preview image can be fetched (GET, same credentials).
    """
    mime: str | None = Field(None, title="Mime")
    step: int | None = Field(None, title="Step")


class ProblemItem(BaseModel):
    """
    One field a validation problem (422) found wrong.
    """

    field: str = Field(..., title="Field")
    """
    The field's path: `loras[1].strength_model`, a query or path parameter name.
    """
    reason: str = Field(..., title="Reason")
    """
    What is wrong, in plain words.
    """
    type: str = Field(..., title="Type")
    """
    Machine-readable error type (`invalid` when nothing more precise is known).
    """


class ProgressData(BaseModel):
    """
    `job.progress`: where a running job is.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """
    stage: str = Field(..., title="Stage")
    """
    What the job is doing: sampling, training, caching, ...
    """
    step: int = Field(..., title="Step")
    total: int = Field(..., title="Total")
    percent: float | None = Field(None, title="Percent")
    it_per_s: float | None = Field(None, title="It Per S")
    """
    Steps per second, when the engine reports it.
    """
    eta_s: float | None = Field(None, title="Eta S")
    """
    Seconds left, when the engine can tell.
    """
    loss: float | None = Field(None, title="Loss")
    """
    Training loss at this step.
    """
    node: str | None = Field(None, title="Node")
    """
    The ComfyUI node executing.
    """


class Readiness(BaseModel):
    """
    Readiness and the check behind it.
    """

    status: str = Field(..., title="Status")
    checks: dict[str, Any] = Field(..., title="Checks")


class RegisterTemplate(BaseModel):
    """
    A graph edited in ComfyUI whose parameters are marked with Atelier…Input nodes.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    name: str = Field(..., title="Name")
    """
    The template's name (lowercase letters, digits, - and _; not a built-in name).
    """
    description: constr(max_length=2000) = Field("", title="Description")
    """
    What the template makes.
    """
    workflow: dict[str, Any] = Field(..., title="Workflow")
    """
    The graph in API format or in the editor's (UI) format.
    """


class RegisteredBody(BaseModel):
    """
    A request for a template registered from a graph edited in ComfyUI (POST /v1/templates).

    `template` names it; the other fields are the ones its parameter markers define
    (GET /v1/templates/{name} shows their schema). Image fields take a data URL.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    priority: conint(ge=-100, le=100) = Field(0, title="Priority")
    """
    Higher runs first.
    """
    webhook_url: AnyUrl | None = Field(None, title="Webhook Url")
    """
    Called with the job when it ends.
    """
    template: str = Field(..., title="Template")
    """
    The name the template was registered under.
    """


class RetryingData(BaseModel):
    """
    `job.retrying`: the attempt failed and the job is queued again.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """
    attempt: int | None = Field(None, title="Attempt")
    reason: str | None = Field(None, title="Reason")


class RotateSecret(BaseModel):
    """
    How long the secret being replaced keeps signing (alongside the new one).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    grace_s: conint(ge=0, le=2592000) = Field(86400, title="Grace S")
    """
    Seconds the old secret stays valid; 0 = none.
    """


class RunInfo(BaseModel):
    """
    Where the sd-scripts run of a training is, and how far it got.
    """

    host: str | None = Field(None, title="Host")
    pid: int | None = Field(None, title="Pid")
    """
    Set while the process runs.
    """
    last_step: int = Field(..., title="Last Step")
    """
    The step of the latest saved state.
    """
    resumable: bool = Field(..., title="Resumable")
    """
    A saved state exists: POST .../resume can continue from it.
    """
    manifest_sha256: str | None = Field(None, title="Manifest Sha256")
    """
    SHA-256 of the dataset manifest (canonical JSON).
    """
    dataset_images: int | None = Field(None, title="Dataset Images")


class SampleOut(BaseModel):
    """
    A sample image a training made while it trained.
    """

    url: str = Field(..., title="Url")
    step: int | None = Field(None, title="Step")
    prompt: str | None = Field(None, title="Prompt")


class SamplePromptIn(BaseModel):
    """
    A prompt sd-scripts renders while training; the subject's trigger word is added when missing.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    prompt: constr(min_length=1, max_length=1000) = Field(..., title="Prompt")
    negative_prompt: constr(max_length=1000) | None = Field(None, title="Negative Prompt")
    width: conint(ge=64, le=2048, multiple_of=8) | None = Field(None, title="Width")
    """
    Default: the training resolution.
    """
    height: conint(ge=64, le=2048, multiple_of=8) | None = Field(None, title="Height")
    """
    Default: the training resolution.
    """
    steps: conint(ge=1, le=150) = Field(20, title="Steps")
    """
    Sampler steps.
    """
    scale: confloat(ge=0.0, le=30.0) = Field(7.0, title="Scale")
    """
    CFG scale.
    """
    seed: conint(ge=0, le=4294967295) | None = Field(None, title="Seed")


class SecretOut(BaseModel):
    """
    One signing secret.
    """

    secret: str = Field(..., title="Secret")
    """
    `whsec_<base64>`: give it to your Standard Webhooks verifier.
    """
    created_at: AwareDatetime = Field(..., title="Created At")
    expires_at: AwareDatetime | None = Field(None, title="Expires At")
    """
    Set on a rotated-out secret: it signs until then.
    """


class SubjectOut(BaseModel):
    """
    A subject as clients see it.
    """

    id: UUID = Field(..., title="Id")
    name: str = Field(..., title="Name")
    kind: Literal["person", "style", "product", "character"] = Field(..., title="SubjectKind")
    """
    What a LoRA is trained to reproduce.
    """
    trigger_word: str = Field(..., title="Trigger Word")
    class_word: str | None = Field(None, title="Class Word")
    consent: dict[str, Any] = Field(..., title="Consent")
    """
    The stored consent record: attestations, who, when.
    """
    consent_sha256: str = Field(..., title="Consent Sha256")
    """
    SHA-256 of the record's canonical JSON (in every LoRA's metadata).
    """
    photo_count: int = Field(..., title="Photo Count")
    """
    Accepted photos.
    """
    created_at: AwareDatetime = Field(..., title="Created At")
    erasure: ErasureInfo | None = None
    """
    Set while the subject is being erased.
    """


class SucceededData(BaseModel):
    """
    `job.succeeded`: the job ended well; `result` as on the job resource.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """
    result: dict[str, Any] | None = Field(None, title="Result")


class TemplateDetail(BaseModel):
    """
    A template with its example request and graphs.
    """

    name: str = Field(..., title="Name")
    description: str = Field(..., title="Description")
    url: str = Field(..., title="Url")
    input_schema: dict[str, Any] = Field(..., title="Input Schema")
    registered: bool = Field(False, title="Registered")
    """
    True for a template you registered from a ComfyUI graph.
    """
    example: dict[str, Any] = Field(..., title="Example")
    family: str | None = Field(..., title="Family")
    """
    The model family of the example; None for a registered template.
    """
    api_graph: dict[str, Any] = Field(..., title="Api Graph")
    """
    The example's API-format graph (POST it as {workflow}).
    """
    ui_graph: dict[str, Any] | None = Field(None, title="Ui Graph")
    """
    The same graph in ComfyUI's editor format (from a ready backend's /object_info, else from the node definitions the service knows).
    """
    ui_graph_unavailable: str | None = Field(None, title="Ui Graph Unavailable")
    """
    Why ui_graph is null.
    """
    field_map: list[dict[str, str]] = Field(..., title="Field Map")
    """
    Which request field sets which node input (for a built-in template's graphs: the value input of the parameter marker that stands for the field).
    """
    unmarked_fields: dict[str, str] | None = Field(None, title="Unmarked Fields")
    """
    Request fields of a built-in template that no marker in the graphs stands for, and why (the LoRA list: add Atelier LoRA loader nodes instead).
    """


class TemplateSummary(BaseModel):
    """
    A template in the list.
    """

    name: str = Field(..., title="Name")
    description: str = Field(..., title="Description")
    url: str = Field(..., title="Url")
    input_schema: dict[str, Any] = Field(..., title="Input Schema")
    registered: bool = Field(False, title="Registered")
    """
    True for a template you registered from a ComfyUI graph.
    """


class TrainingCreate(BaseModel):
    """
    A LoRA to train on a subject's accepted photos. Unset parameters come from the preset.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    subject_id: UUID = Field(..., title="Subject Id")
    base_model: constr(min_length=1, max_length=300) = Field(..., title="Base Model")
    """
    A checkpoint in models/checkpoints.
    """
    base_family: Literal["sd15", "sdxl", "flux"] | None = None
    """
    sd15 | sdxl | flux; default: read from the checkpoint's tensor names.
    """
    preset: Literal["fast", "balanced", "quality"] = Field("balanced", title="Preset")
    """
    fast | balanced | quality.
    """
    steps: conint(ge=1, le=100000) | None = Field(None, title="Steps")
    """
    Training steps.
    """
    network_dim: conint(ge=1, le=256) | None = Field(None, title="Network Dim")
    """
    LoRA rank.
    """
    network_alpha: confloat(le=256.0, gt=0.0) | None = Field(None, title="Network Alpha")
    """
    LoRA alpha.
    """
    learning_rate: confloat(le=1.0, gt=0.0) | None = Field(None, title="Learning Rate")
    resolution: conint(ge=64, le=2048, multiple_of=64) | None = Field(None, title="Resolution")
    """
    Training image size.
    """
    optimizer: Literal["AdamW", "AdamW8bit", "Adafactor", "Lion", "Prodigy"] | None = None
    batch_size: conint(ge=1, le=32) | None = Field(None, title="Batch Size")
    captions: Literal["auto", "trigger", "manual"] | CaptionOptions | None = None
    """
    A caption mode ('auto' | 'trigger' | 'manual') or {mode, template, per_photo}.
    """
    sample_prompts: list[SamplePromptIn] | None = Field(None, max_length=8, title="Sample Prompts")
    sample_every_n_steps: conint(ge=1, le=100000) | None = Field(None, title="Sample Every N Steps")
    """
    Default with prompts: at every save.
    """
    save_every_n_steps: conint(ge=1, le=100000) | None = Field(None, title="Save Every N Steps")
    """
    Checkpoint + resumable state interval.
    """
    seed: conint(ge=0, le=4294967295) = Field(42, title="Seed")
    lora_name: str | None = Field(None, title="Lora Name")
    """
    Registry name (letters, digits, . _ -; 64 at most); default: from the subject's name.
    """
    priority: conint(ge=-100, le=100) = Field(0, title="Priority")
    """
    Higher runs first.
    """
    webhook_url: AnyUrl | None = Field(None, title="Webhook Url")
    """
    Called with the job when it ends.
    """


class TrainingOut(BaseModel):
    """
    A training job, its run and the LoRA version it produced.
    """

    id: UUID = Field(..., title="Id")
    kind: str = Field(..., title="Kind")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(..., title="Status")
    """
    A job's status.
    """
    priority: int = Field(..., title="Priority")
    payload: dict[str, Any] = Field(..., title="Payload")
    result: dict[str, Any] | None = Field(None, title="Result")
    error: dict[str, Any] | None = Field(None, title="Error")
    """
    {class, message, retryable} when the job failed.
    """
    progress: dict[str, Any] | None = Field(None, title="Progress")
    """
    The latest job.progress data.
    """
    attempts: int = Field(..., title="Attempts")
    max_attempts: int = Field(..., title="Max Attempts")
    backend: str | None = Field(None, title="Backend")
    created_at: AwareDatetime = Field(..., title="Created At")
    started_at: AwareDatetime | None = Field(None, title="Started At")
    finished_at: AwareDatetime | None = Field(None, title="Finished At")
    events_url: str = Field(..., title="Events Url")
    """
    SSE stream of this job's events.
    """
    subject_id: UUID | None = Field(None, title="Subject Id")
    lora_name: str | None = Field(None, title="Lora Name")
    resumed_from: UUID | None = Field(None, title="Resumed From")
    run: RunInfo | None = None
    lora: LoraVersionRef | None = None


class Txt2ImgBody(BaseModel):
    """
    A txt2img generation (see GET /v1/templates/txt2img).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    priority: conint(ge=-100, le=100) = Field(0, title="Priority")
    """
    Higher runs first.
    """
    webhook_url: AnyUrl | None = Field(None, title="Webhook Url")
    """
    Called with the job when it ends.
    """
    template: Literal["txt2img"] = Field("txt2img", title="Template")
    """
    Template name: txt2img.
    """
    base_model: constr(min_length=1, max_length=200) = Field(..., title="Base Model")
    """
    Name of the base model to generate with.
    """
    prompt: constr(min_length=1, max_length=10000) = Field(..., title="Prompt")
    """
    What the image should show.
    """
    negative_prompt: constr(max_length=10000) = Field("", title="Negative Prompt")
    """
    What the image should not show (no effect at Flux's cfg 1).
    """
    loras: list[LoraRequest] | None = Field(None, max_length=16, title="Loras")
    """
    LoRAs to apply, in order (at most 16).
    """
    width: conint(ge=64, le=2048, multiple_of=8) | None = Field(None, title="Width")
    """
    Image width in pixels, a multiple of 8; default 512 for SD1.5, 1024 for SDXL and Flux.
    """
    height: conint(ge=64, le=2048, multiple_of=8) | None = Field(None, title="Height")
    """
    Image height in pixels, a multiple of 8; default 512 for SD1.5, 1024 for SDXL and Flux.
    """
    steps: conint(ge=1, le=150) = Field(20, title="Steps")
    """
    Number of sampling steps.
    """
    cfg: confloat(ge=0.0, le=30.0) | None = Field(None, title="Cfg")
    """
    Classifier-free guidance scale; for Flux the FluxGuidance value (the sampler runs at cfg 1). Default 7 for SD1.5 and SDXL, 3.5 for Flux.
    """
    sampler: constr(pattern=r"^[A-Za-z0-9_.+\-]+$", max_length=64) = Field("euler", title="Sampler")
    """
    Sampler name as ComfyUI knows it.
    """
    scheduler: constr(pattern=r"^[A-Za-z0-9_.+\-]+$", max_length=64) | None = Field(None, title="Scheduler")
    """
    Scheduler name as ComfyUI knows it; default 'normal' for SD1.5 and SDXL, 'simple' for Flux.
    """
    seed: conint(ge=0, le=18446744073709551615) | None = Field(None, title="Seed")
    """
    Noise seed; a random one is picked (and reported) when absent.
    """
    batch_size: conint(ge=1, le=4) = Field(1, title="Batch Size")
    """
    Number of images to generate (1-4).
    """


class WebhookSecrets(BaseModel):
    """
    The caller's secrets that sign deliveries now: the current one first, then rotated ones still in grace.
    """

    current: SecretOut
    previous: list[SecretOut] | None = Field(None, title="Previous")


class WorkflowBody(BaseModel):
    """
    An API-format ComfyUI graph (as ComfyUI's "Export (API)" writes it; the editor's UI format is accepted too).

    Only allowlisted node classes may appear; URLs in inputs must point at allowlisted hosts.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    priority: conint(ge=-100, le=100) = Field(0, title="Priority")
    """
    Higher runs first.
    """
    webhook_url: AnyUrl | None = Field(None, title="Webhook Url")
    """
    Called with the job when it ends.
    """
    workflow: dict[str, Any] = Field(..., title="Workflow")
    """
    The graph: {node_id: {class_type, inputs}}.
    """
    inputs: dict[str, dict[str, Any]] | None = Field(None, title="Inputs")
    """
    Values set on the graph before it runs: {node_id: {input_name: value}}. A data URL given to a LoadImage 'image' input is uploaded to the backend as that image.
    """


class Accepted(BaseModel):
    """
    The answer to a request that queued a job.
    """

    id: UUID = Field(..., title="Id")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field("queued", title="Status")
    """
    A job's status.
    """
    events_url: str = Field(..., title="Events Url")


class ContentPolicyProblem(BaseModel):
    """
    A 422 whose `type` ends in `/content-policy`: the content policy refused the request's text.
    Nothing was queued or stored; the refusal is in the audit log under `request_id`.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    type: str = Field(..., title="Type")
    title: str = Field(..., title="Title")
    status: int = Field(..., title="Status")
    detail: str = Field(..., title="Detail")
    instance: str | None = Field(None, title="Instance")
    errors: list[PolicyError] = Field(..., title="Errors")
    """
    One item per request field involved.
    """
    rule: str = Field(..., title="Rule")
    """
    The rule that refused it: minors_sexual or nsfw_text.
    """
    request_id: str = Field(..., title="Request Id")
    """
    The refusal's id in the audit log (GET /v1/audit).
    """


class CreateJob(BaseModel):
    """
    A diagnostic job: it only reports progress. Generations and trainings have their own endpoints.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    kind: Literal["noop"] = Field(..., title="Kind")
    """
    The job kind; only noop is created through this endpoint.
    """
    payload: NoopPayload | None = None
    priority: conint(ge=-100, le=100) = Field(0, title="Priority")
    """
    Higher runs first.
    """
    webhook_url: AnyUrl | None = Field(None, title="Webhook Url")
    """
    Called with the job when it ends.
    """


class DeliveryList(BaseModel):
    """
    A page of deliveries, newest first.
    """

    items: list[DeliveryOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")
    """
    Pass it as `cursor` for the next page; none on the last.
    """


class FailedData(BaseModel):
    """
    `job.failed`: the job ended with an error.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    job_id: UUID = Field(..., title="Job Id")
    at: AwareDatetime = Field(..., title="At")
    """
    When the event was written.
    """
    error: JobError


class GenerationOut(BaseModel):
    """
    A generation as clients see it.
    """

    id: UUID = Field(..., title="Id")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(..., title="Status")
    """
    A job's status.
    """
    template: str | None = Field(..., title="Template")
    """
    The template, or null for a submitted workflow.
    """
    base_model: dict[str, Any] | None = Field(None, title="Base Model")
    params: dict[str, Any] = Field(..., title="Params")
    """
    The request's parameters (init images as storage references).
    """
    loras: list[dict[str, Any]] | None = Field(None, title="Loras")
    """
    LoRAs used, resolved to files.
    """
    seed: int | None = Field(None, title="Seed")
    """
    The seed actually used.
    """
    priority: int = Field(..., title="Priority")
    progress: dict[str, Any] | None = Field(None, title="Progress")
    result: dict[str, Any] | None = Field(None, title="Result")
    error: dict[str, Any] | None = Field(None, title="Error")
    images: list[ImageOut] | None = Field(None, title="Images")
    attempts: int = Field(..., title="Attempts")
    backend: str | None = Field(None, title="Backend")
    created_at: AwareDatetime = Field(..., title="Created At")
    started_at: AwareDatetime | None = Field(None, title="Started At")
    finished_at: AwareDatetime | None = Field(None, title="Finished At")
    events_url: str = Field(..., title="Events Url")


class Img2ImgBody(BaseModel):
    """
    An img2img generation (see GET /v1/templates/img2img).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    priority: conint(ge=-100, le=100) = Field(0, title="Priority")
    """
    Higher runs first.
    """
    webhook_url: AnyUrl | None = Field(None, title="Webhook Url")
    """
    Called with the job when it ends.
    """
    template: Literal["img2img"] = Field("img2img", title="Template")
    """
    Template name: img2img.
    """
    base_model: constr(min_length=1, max_length=200) = Field(..., title="Base Model")
    """
    Name of the base model to generate with.
    """
    prompt: constr(min_length=1, max_length=10000) = Field(..., title="Prompt")
    """
    What the image should show.
    """
    negative_prompt: constr(max_length=10000) = Field("", title="Negative Prompt")
    """
    What the image should not show (no effect at Flux's cfg 1).
    """
    loras: list[LoraRequest] | None = Field(None, max_length=16, title="Loras")
    """
    LoRAs to apply, in order (at most 16).
    """
    width: conint(ge=64, le=2048, multiple_of=8) | None = Field(None, title="Width")
    """
    Image width in pixels, a multiple of 8; default 512 for SD1.5, 1024 for SDXL and Flux.
    """
    height: conint(ge=64, le=2048, multiple_of=8) | None = Field(None, title="Height")
    """
    Image height in pixels, a multiple of 8; default 512 for SD1.5, 1024 for SDXL and Flux.
    """
    steps: conint(ge=1, le=150) = Field(20, title="Steps")
    """
    Number of sampling steps.
    """
    cfg: confloat(ge=0.0, le=30.0) | None = Field(None, title="Cfg")
    """
    Classifier-free guidance scale; for Flux the FluxGuidance value (the sampler runs at cfg 1). Default 7 for SD1.5 and SDXL, 3.5 for Flux.
    """
    sampler: constr(pattern=r"^[A-Za-z0-9_.+\-]+$", max_length=64) = Field("euler", title="Sampler")
    """
    Sampler name as ComfyUI knows it.
    """
    scheduler: constr(pattern=r"^[A-Za-z0-9_.+\-]+$", max_length=64) | None = Field(None, title="Scheduler")
    """
    Scheduler name as ComfyUI knows it; default 'normal' for SD1.5 and SDXL, 'simple' for Flux.
    """
    seed: conint(ge=0, le=18446744073709551615) | None = Field(None, title="Seed")
    """
    Noise seed; a random one is picked (and reported) when absent.
    """
    batch_size: conint(ge=1, le=4) = Field(1, title="Batch Size")
    """
    Number of images to generate (1-4).
    """
    init_image: constr(min_length=1) = Field(..., title="Init Image")
    """
    The image to start from: a base64 data URL (data:image/png;base64,...) or bare base64; PNG, JPEG or WebP.
    """
    denoise: confloat(ge=0.0, le=1.0) = Field(0.75, title="Denoise")
    """
    How much of the init image is redrawn: 0 keeps it, 1 ignores it.
    """


class JobEvent(BaseModel):
    """
    One Server-Sent Event as a client parses it: `id:`, `event:` and `data:` (JSON).

    `id` is the event's global sequence number; send it back as `Last-Event-ID` (or `?after=`) to resume.
    """

    id: int = Field(..., title="Id")
    """
    The event's sequence number (the SSE `id:` field).
    """
    event: Literal[
        "job.queued",
        "job.started",
        "job.progress",
        "job.preview",
        "job.artifact",
        "job.retrying",
        "job.succeeded",
        "job.failed",
        "job.cancelled",
    ] = Field(..., title="Event")
    """
    The SSE `event:` field.
    """
    data: ProgressData | PreviewData | ArtifactData | RetryingData | FailedData | SucceededData | EventData = Field(
        ..., title="Data"
    )
    """
    The SSE `data:` field, one JSON object.
    """


class JobOut(BaseModel):
    """
    A job as clients see it.
    """

    id: UUID = Field(..., title="Id")
    kind: str = Field(..., title="Kind")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(..., title="Status")
    """
    A job's status.
    """
    priority: int = Field(..., title="Priority")
    payload: dict[str, Any] = Field(..., title="Payload")
    result: dict[str, Any] | None = Field(None, title="Result")
    error: dict[str, Any] | None = Field(None, title="Error")
    """
    {class, message, retryable} when the job failed.
    """
    progress: dict[str, Any] | None = Field(None, title="Progress")
    """
    The latest job.progress data.
    """
    attempts: int = Field(..., title="Attempts")
    max_attempts: int = Field(..., title="Max Attempts")
    backend: str | None = Field(None, title="Backend")
    created_at: AwareDatetime = Field(..., title="Created At")
    started_at: AwareDatetime | None = Field(None, title="Started At")
    finished_at: AwareDatetime | None = Field(None, title="Finished At")
    events_url: str = Field(..., title="Events Url")
    """
    SSE stream of this job's events.
    """


class LoraVersionOut(BaseModel):
    """
    One published file of a LoRA.
    """

    version: int = Field(..., title="Version")
    comfy_name: str = Field(..., title="Comfy Name")
    """
    Name in ComfyUI's LoRA list (path under models/loras).
    """
    sha256: str = Field(..., title="Sha256")
    size_bytes: int = Field(..., title="Size Bytes")
    base_model: str = Field(..., title="Base Model")
    base_model_sha256: str | None = Field(None, title="Base Model Sha256")
    training_job_id: UUID | None = Field(None, title="Training Job Id")
    metadata: dict[str, Any] = Field(..., title="Metadata")
    """
    The file's safetensors metadata: sd-scripts' ss_* and atelier_*.
    """
    created_at: AwareDatetime = Field(..., title="Created At")
    file_url: str = Field(..., title="File Url")
    samples: list[SampleOut] | None = Field(None, title="Samples")
    """
    The sample images its training made (GET each url), oldest first.
    """


class PhotoList(BaseModel):
    """
    A subject's photos, oldest first.
    """

    items: list[PhotoOut] = Field(..., title="Items")


class PhotoUploadResult(BaseModel):
    """
    One verdict per uploaded file, in upload order.
    """

    accepted: int = Field(..., title="Accepted")
    rejected: int = Field(..., title="Rejected")
    verdicts: list[PhotoVerdictOut] = Field(..., title="Verdicts")


class PresignResult(BaseModel):
    """
    One presigned upload per requested file.
    """

    uploads: list[PresignedUpload] = Field(..., title="Uploads")
    expires_in_s: int = Field(..., title="Expires In S")


class Problem(BaseModel):
    """
    An RFC 9457 problem document; validation problems (422) list each field in `errors`.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    type: str = Field(..., title="Type")
    title: str = Field(..., title="Title")
    status: int = Field(..., title="Status")
    detail: str = Field(..., title="Detail")
    instance: str | None = Field(None, title="Instance")
    errors: list[ProblemItem] | None = Field(None, title="Errors")
    """
    Validation problems: one item per field.
    """


class SubjectCreate(BaseModel):
    """
    A person, style, product or character to train LoRAs on.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    name: constr(min_length=1, max_length=100) = Field(..., title="Name")
    """
    Unique among your subjects.
    """
    kind: Literal["person", "style", "product", "character"] = Field(..., title="SubjectKind")
    """
    person | style | product | character.
    """
    trigger_word: str = Field(..., title="Trigger Word")
    """
    The token that calls the subject up in prompts: 2-40 letters/digits/_/-.
    """
    class_word: constr(min_length=1, max_length=50) | None = Field(None, title="Class Word")
    """
    What the subject is (woman, sneaker); default: the kind.
    """
    consent: ConsentIn | None = None
    """
    Required for a person (both attestations true).
    """


class SubjectList(BaseModel):
    """
    A page of subjects, newest first.
    """

    items: list[SubjectOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")
    """
    Pass it as `cursor` for the next page; none on the last.
    """


class TemplateList(BaseModel):
    """
    Every template.
    """

    items: list[TemplateSummary] = Field(..., title="Items")


class TrainingList(BaseModel):
    """
    A page of trainings, newest first.
    """

    items: list[TrainingOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")
    """
    Pass it as `cursor` for the next page; none on the last.
    """


class WebhookPayload(BaseModel):
    """
    The body of a webhook, shaped as Standard Webhooks recommends: `type`, `timestamp` and `data`.
    """

    type: str = Field(..., title="Type")
    """
    job.succeeded, job.failed or job.cancelled.
    """
    timestamp: AwareDatetime = Field(..., title="Timestamp")
    """
    When the job ended.
    """
    data: JobOut
    """
    The job as `GET /v1/jobs/{id}` shows it.
    """


class GenerationBody(RootModel[Txt2ImgBody | Img2ImgBody | WorkflowBody | RegisteredBody]):
    root: Txt2ImgBody | Img2ImgBody | WorkflowBody | RegisteredBody = Field(..., title="GenerationBody")
    """
    POST /v1/generations: a template request (`template`: txt2img | img2img | a registered template's
    name) or `{workflow, inputs?}`.
    """


class GenerationList(BaseModel):
    """
    A page of generations, newest first.
    """

    items: list[GenerationOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")
    """
    Pass it as `cursor` for the next page; none on the last.
    """


class JobList(BaseModel):
    """
    A page of jobs, newest first.
    """

    items: list[JobOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")
    """
    Pass it as `cursor` for the next page; none on the last.
    """


class LoraOut(BaseModel):
    """
    A LoRA of a subject and its versions (oldest first).
    """

    id: UUID = Field(..., title="Id")
    name: str = Field(..., title="Name")
    """
    Use it (or the id) in generations: loras[].lora.
    """
    subject_id: UUID | None = Field(None, title="Subject Id")
    base_family: str = Field(..., title="Base Family")
    trigger_word: str | None = Field(None, title="Trigger Word")
    """
    Added to generation prompts that lack it.
    """
    created_at: AwareDatetime = Field(..., title="Created At")
    versions: list[LoraVersionOut] = Field(..., title="Versions")


class LoraList(BaseModel):
    """
    A page of LoRAs, newest first.
    """

    items: list[LoraOut] = Field(..., title="Items")
    next_cursor: str | None = Field(None, title="Next Cursor")
    """
    Pass it as `cursor` for the next page; none on the last.
    """
