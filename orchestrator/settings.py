"""The one place that reads configuration: environment variables prefixed ``ATELIER_``.

Everything else receives a validated :class:`Settings` instance.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "auto"

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def is_loopback_host(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``ATELIER_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore", validate_default=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description=(
            "SQLAlchemy URL of the Postgres database (asyncpg driver; created if missing); auto = Postgres on "
            "127.0.0.1:5432 when one answers, else an embedded one under <var_dir>/postgres; embedded = always that."
        ),
        repr=False,  # it may carry a password; SQLAlchemy and asyncpg take it as a string, so it stays one
    )
    storage_url: str = Field(
        "file://./var/storage",
        description="Where images and LoRA files are kept: file://<dir> or s3://<bucket>/<prefix>.",
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, moto, ...); None = AWS.")
    s3_public_endpoint_url: str | None = Field(
        None, description="S3 endpoint as clients reach it, for presigned URLs; None = ATELIER_S3_ENDPOINT_URL."
    )
    s3_region: str = Field("us-east-1", description="S3 region name.")
    s3_access_key_id: str | None = Field(None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret access key.")

    host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP API binds to (0 = any free port).")
    auth: Literal["apikey", "disabled"] = Field(
        "apikey", description="apikey = Bearer keys per owner; disabled = single-user mode (loopback only)."
    )

    var_dir: Path = Field(Path("var"), description="Working directory for runtime state.")
    models_dir: Path = Field(Path("models"), description="The model store shared with ComfyUI.")

    engines: Literal["installed", "external"] = Field(
        "installed",
        description=(
            "installed = also run the engines `atelier engines install` put under <var_dir>/engines; "
            "external = only the servers and checkouts configured below."
        ),
    )
    engines_dir: Path | None = Field(
        None, description="Where `atelier engines` installs and the service finds engines; None = <var_dir>/engines."
    )
    install_missing: bool = Field(
        False,
        description="At start-up, install missing engines and the default model in the background (make run sets it).",
    )
    default_model: str = Field(
        "sd15", description="Base model installed at start-up when missing (a name of `atelier models pull`)."
    )
    engines_torch: Literal["auto", "cpu", "cuda", "rocm", "mps"] = Field(
        "auto", description="Which torch build engine installs take; auto = by the accelerator found."
    )
    engines_comfyui_source: str | None = Field(
        None,
        description=(
            "Git URL or local repository `atelier engines install comfyui` (and the first run) takes ComfyUI from; "
            "None = upstream. Like --source."
        ),
    )
    engines_comfyui_ref: str | None = Field(
        None, description="Commit, tag or branch ComfyUI is installed at; None = the pinned commit. Like --ref."
    )
    engines_sd_scripts_source: str | None = Field(
        None,
        description=(
            "Git URL or local repository `atelier engines install sd-scripts` (and the first run) takes sd-scripts "
            "from; None = upstream. Like --source."
        ),
    )
    engines_sd_scripts_ref: str | None = Field(
        None, description="Commit, tag or branch sd-scripts is installed at; None = the pinned commit. Like --ref."
    )
    comfyui_urls: CommaList = Field(default_factory=list, description="Running ComfyUI servers (comma list).")
    comfyui_output_dirs: CommaList = Field(
        default_factory=list,
        description="url=folder pairs (comma list): the output folder of a running ComfyUI on this machine; its "
        "images are read from there instead of over /view (a local ComfyUI's folder is known).",
    )
    comfyui_dir: Path | None = Field(None, description="A ComfyUI checkout to launch and supervise.")
    comfyui_python: Path | None = Field(None, description="Python to run ComfyUI with.")
    comfyui_warmup_model: str | None = Field(
        None, description="A base model each ComfyUI backend must run one tiny prompt on before it counts as ready."
    )
    comfyui_cpu: bool = Field(False, description="Start the local ComfyUI with --cpu.")
    comfyui_local_instances: int = Field(
        1, ge=1, le=8, description="How many local ComfyUI processes to launch from ATELIER_COMFYUI_DIR."
    )
    comfyui_extra_args: str = Field("", description="More command-line flags for the local ComfyUI (shell-quoted).")
    comfyui_probe_interval_s: float = Field(5.0, gt=0, description="How often each ComfyUI backend's health is probed.")
    comfyui_poll_s: float = Field(
        1.0, gt=0, description="While a prompt's websocket is down, how often /history is checked."
    )
    comfyui_lost_after_s: float = Field(
        20.0, gt=0, description="A backend silent this long during a prompt is lost (the job retries elsewhere)."
    )
    comfyui_ready_wait_s: float = Field(
        30.0, ge=0, description="A generation that finds no ready backend waits this long for one before failing."
    )
    model_catalog: Path | None = Field(
        None, description="YAML catalog of named base models (Flux and others); None = <models_dir>/catalog.yaml."
    )
    raw_workflows: bool = Field(True, description="Accept API-format workflows in POST /v1/generations.")
    raw_workflow_extra_classes: CommaList = Field(
        default_factory=list, description="Node classes allowed in raw workflows besides the built-in core set."
    )
    raw_workflow_url_hosts: CommaList = Field(
        default_factory=list, description="Hosts that URLs inside raw workflow inputs may point at."
    )
    init_image_max_bytes: int = Field(10 << 20, gt=0, description="Largest img2img init image (decoded bytes).")
    init_image_max_pixels: int = Field(
        16_777_216, gt=0, description="Most pixels an img2img init image may have (decompression-bomb guard)."
    )
    preview_interval_s: float = Field(
        1.0, ge=0, description="Least time between two job.preview events of a generation; 0 = no previews."
    )
    progress_interval_s: float = Field(
        0.25,
        ge=0,
        description="A generation's job.progress ticks are written together, this long after the first of them "
        "(none is dropped); a sampler's last step at once, with those held; 0 = each tick at once.",
    )
    pending_images_sweep_s: float = Field(
        5.0,
        gt=0,
        description="How often finished generations' small images (up to 32 KiB) are made durable in storage; "
        "until then their bytes wait in the database (a local disk is not waited on before the job ends for them).",
    )
    sd_scripts_dir: Path | None = Field(None, description="A kohya sd-scripts checkout.")
    sd_scripts_python: Path | None = Field(None, description="Python (with sd-scripts' requirements).")
    sd_scripts_launcher: Path | None = Field(
        None, description="Launcher run with sd-scripts' Python; None = trainer/launcher.py (tests: the stand-in)."
    )
    sd_scripts_tokenizer_cache_dir: Path | None = Field(
        None, description="Offline CLIP tokenizer cache for sd-scripts (python -m trainer.tokenizer_cache builds one)."
    )
    training_cpu: bool = Field(False, description="Train on the CPU: fp32, no 8-bit optimizers, no data workers.")
    training_wall_clock_limit_s: float = Field(
        6 * 3600.0, gt=0, description="A training run still going after this many seconds is stopped (timed_out)."
    )
    training_sigint_grace_s: float = Field(
        15.0, gt=0, description="Cancel: seconds between SIGINT and SIGTERM to the run's process group."
    )
    training_sigterm_grace_s: float = Field(
        10.0, gt=0, description="Cancel: seconds between SIGTERM and SIGKILL to the run's process group."
    )
    training_flux_clip_l: Path | None = Field(
        None, description="Flux training: clip_l weights (under models_dir or absolute)."
    )
    training_flux_t5xxl: Path | None = Field(
        None, description="Flux training: t5xxl weights (under models_dir or absolute)."
    )
    training_flux_ae: Path | None = Field(
        None, description="Flux training: ae (VAE) weights (under models_dir or absolute)."
    )
    captioner: str | None = Field(
        None,
        description="Captioning model for captions 'auto' (BLIP or Florence-2): a directory, a hub id (org/name) or "
        "a known name (blip-base, florence2-base, ...) pulled with `atelier models pull`; unset = no auto-captioning.",
    )
    captioner_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the captioner runs; auto = CUDA when torch sees a GPU."
    )
    captioner_batch_size: int = Field(8, ge=1, le=256, description="Photos the captioner describes per model call.")
    captioner_max_new_tokens: int = Field(40, ge=1, le=300, description="Longest description, in tokens.")
    captioner_threads: int = Field(
        0, ge=0, le=256, description="CPU threads for the captioner's torch (0 = torch's default, one per core)."
    )
    photo_max_bytes: int = Field(20 << 20, gt=0, description="Largest photo file accepted, in bytes.")
    photo_max_pixels: int = Field(
        40_000_000, gt=0, description="Most pixels a photo may have (decompression-bomb guard)."
    )
    photo_min_side: int = Field(256, ge=1, description="Shortest side a photo may have, in pixels.")
    photo_max_count: int = Field(50, ge=1, description="Most photos one subject may have.")

    content_policy: Literal["strict", "permissive"] = Field(
        "strict",
        description="strict = sexual or nudity content refused; permissive = allowed to API keys with the "
        "adult-content flag. Minors are never sexualised, whatever this says.",
    )
    content_image_threshold: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="open_nsfw score at or above which an image counts as explicit (0 = every image).",
    )
    content_image_action: Literal["fail", "blur"] = Field(
        "fail",
        description="An explicit generated image under the policy: fail = the job fails (content_blocked), "
        "nothing stored; blur = a blurred copy is stored instead, flagged.",
    )

    worker_enabled: bool = Field(True, description="Run the job worker inside `atelier serve`.")
    worker_kinds: CommaList = Field(
        default_factory=lambda: ["noop", "generation", "training", "erasure"],
        description="Job kinds this process claims.",
    )
    worker_concurrency: int = Field(4, ge=1, le=256, description="Jobs one worker process runs at once.")
    scheduling: Literal["fair", "fifo"] = Field(
        "fair",
        description="fair = priority, then weighted fair share between owners, preferring jobs whose model a backend "
        "has loaded; fifo = priority, then age, no owner fairness, no model affinity (the baseline "
        "benchmarks/bench_scheduling.py compares with).",
    )
    affinity_max_wait_s: float = Field(
        60.0,
        ge=0,
        description="The most a job may wait beyond its FIFO turn so that backends can reuse a loaded model "
        "(0 = no affinity).",
    )
    owner_max_running: int = Field(0, ge=0, description="Most jobs one owner may have running at once (0 = no cap).")
    comfyui_backend_depth: int = Field(
        2, ge=1, le=16, description="Prompts sent to one ComfyUI backend at once (1 running + the next, queued there)."
    )
    heartbeat_interval_s: float = Field(2.0, gt=0, description="How often a running job's heartbeat is written.")
    heartbeat_timeout_s: float = Field(15.0, gt=0, description="A running job silent this long is reclaimed.")
    max_attempts: int = Field(3, ge=1, le=20, description="Attempts per job before it fails for good.")
    shutdown_timeout_s: float = Field(20.0, gt=0, description="Grace for running jobs at shutdown.")
    idle_poll_s: float = Field(2.0, gt=0, description="Fallback claim poll when no notification arrives.")

    webhook_secret: SecretStr | None = Field(
        None,
        description="Deprecated (one release): also sign webhooks the old way, X-Atelier-Signature: sha256=<HMAC>.",
    )
    webhook_allow_hosts: CommaList = Field(
        default_factory=list,
        description="Hosts webhooks may target although internal (names, addresses or CIDR networks; comma list).",
    )
    webhook_max_attempts: int = Field(8, ge=1, le=50, description="Deliveries tried before a webhook is given up.")
    webhook_retry_base_s: float = Field(2.0, gt=0, description="First retry delay of a failed webhook (doubles).")
    max_json_body_bytes: int = Field(1 << 20, gt=0, description="Largest JSON request body.")
    max_upload_bytes: int = Field(200 << 20, gt=0, description="Largest multipart request body.")
    queue_limit: int = Field(10_000, gt=0, description="/readyz reports 503 above this many queued jobs.")
    sse_ping_interval_s: float = Field(15.0, gt=0, description="SSE keep-alive comment interval.")
    sse_buffer_limit_bytes: int = Field(
        256 << 10, gt=0, description="An SSE client this far behind is disconnected (it resumes by id)."
    )
    sse_retry_ms: int = Field(
        3000, ge=100, le=600_000, description="The SSE `retry:` hint: how long a browser waits before reconnecting."
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        description="Origins whose browser pages may call the API (comma list; * = any, never with credentials).",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto", description="Event loop implementation; auto = uvloop when installed."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Logging level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line with request_id, owner, job_id, kind, ..."
    )
    access_log: bool = Field(True, description="Log every HTTP request (id, method, path, status, duration).")
    db_pool_size: int = Field(
        10,
        ge=1,
        description="Database connections per pool; a process has two: SQLAlchemy's for reads and claims (up to "
        "twice this under load) and the job store's asyncpg pool for its writes.",
    )

    @field_validator(
        "comfyui_urls",
        "comfyui_output_dirs",
        "worker_kinds",
        "raw_workflow_extra_classes",
        "raw_workflow_url_hosts",
        "cors_origins",
        "webhook_allow_hosts",
        mode="before",
    )
    @classmethod
    def _comma_lists(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("comfyui_output_dirs")
    @classmethod
    def _url_folder_pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            url, _, folder = pair.partition("=")
            if not url.startswith(("http://", "https://")) or not folder:
                raise ValueError(f"{pair!r} is not url=folder (e.g. http://127.0.0.1:8188=/srv/ComfyUI/output)")
        return value

    @model_validator(mode="after")
    def _auth_only_disabled_on_loopback(self) -> Settings:
        if self.auth == "disabled" and not is_loopback_host(self.host):
            raise ValueError(
                f"ATELIER_AUTH=disabled is single-user mode and is refused on a non-loopback bind "
                f"(ATELIER_HOST={self.host}); bind to 127.0.0.1 or use API keys"
            )
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("ATELIER_HEARTBEAT_TIMEOUT_S must exceed ATELIER_HEARTBEAT_INTERVAL_S")
        return self


def engines_root(settings: Settings) -> Path:
    """The folder installed engines live in."""
    return settings.engines_dir or settings.var_dir / "engines"


def engine_origin(settings: Settings, name: str) -> tuple[str | None, str | None]:
    """The repository and ref engine ``name`` is to be installed from (``ATELIER_ENGINES_COMFYUI_SOURCE``/``_REF``,
    ``ATELIER_ENGINES_SD_SCRIPTS_SOURCE``/``_REF``); None = its upstream repository, its pinned commit."""
    origins = {
        "comfyui": (settings.engines_comfyui_source, settings.engines_comfyui_ref),
        "sd-scripts": (settings.engines_sd_scripts_source, settings.engines_sd_scripts_ref),
    }
    return origins[name]


def settings_table() -> str:
    """The configuration table of the README (a test keeps the README in step with this)."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        shown = ",".join(default) if isinstance(default, list) else default
        rows.append(f"| `ATELIER_{name.upper()}` | `{'' if shown is None else shown}` | {field.description} |")
    return "\n".join(rows)
