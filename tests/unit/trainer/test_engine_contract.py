"""Contract: the same supervisor cases against the stand-in and, where installed, real sd-scripts.

The stand-in (tests/standin/fake_sd_trainer.py) always runs. Real kohya sd-scripts runs through
``trainer/launcher.py`` when ``ATELIER_SD_SCRIPTS_DIR``, ``ATELIER_SD_SCRIPTS_PYTHON`` and
``ATELIER_TEST_SD15_FULL_CHECKPOINT`` are set (as for tests/engines/test_sd_scripts_launcher.py; the CLIP
tokenizer cache is built the same way): CPU, 64 px, 6 steps, ~2 minutes for the module, ~6.7 GB RSS.
Everything goes through the service path: prepare_dataset -> write_run_files -> TrainingProcess.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from safetensors import safe_open

from trainer import tokenizer_cache
from trainer.config import LaunchSpec, RunLayout, SdScriptsInstall, TrainingRequest, resolve_request, write_run_files
from trainer.dataset import DatasetPhoto, PrepareOptions, SubjectKind, prepare_dataset
from trainer.failures import FailureClass
from trainer.supervisor import SupervisorOptions, TrainingProcess
from trainer.supervisor_events import Outcome, OutcomeStatus, Progress, StateSaved, SupervisorEvent
from trainer.supervisor_process import become_subreaper
from trainer.supervisor_resume import resume_from_run_dir

STANDIN = Path(__file__).resolve().parents[2] / "standin" / "fake_sd_trainer.py"
REAL_VARS = ("ATELIER_SD_SCRIPTS_DIR", "ATELIER_SD_SCRIPTS_PYTHON", "ATELIER_TEST_SD15_FULL_CHECKPOINT")
REAL_MISSING = [name for name in REAL_VARS if not os.environ.get(name)]
REAL = pytest.param(
    "sd-scripts",
    marks=[
        pytest.mark.engines,
        pytest.mark.slow,
        pytest.mark.timeout(900),
        pytest.mark.skipif(
            bool(REAL_MISSING), reason=f"ENGINE TEST SKIPPED: set {', '.join(REAL_VARS)} (missing: {REAL_MISSING})"
        ),
    ],
)


@dataclass(frozen=True)
class Engine:
    """How to run one engine: its install, a base model, the child environment."""

    name: str
    install: SdScriptsInstall
    base_model: Path
    env: dict[str, str]


@pytest.fixture(scope="module", autouse=True)
def adopt_orphans() -> Iterator[None]:
    become_subreaper(True)
    yield
    become_subreaper(False)


@pytest.fixture(scope="module", params=["stand-in", REAL])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("engine")
    if request.param == "stand-in":
        (root / "sd-scripts").mkdir()
        base = root / "base.safetensors"
        base.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        install = SdScriptsInstall(python=Path(sys.executable), scripts_dir=root / "sd-scripts", launcher=STANDIN)
        return Engine("stand-in", install, base, {**os.environ, "FAKE_SD_STEP_DELAY": "0.05"})
    python = Path(os.environ["ATELIER_SD_SCRIPTS_PYTHON"])
    [tokenizers] = tokenizer_cache.build_tokenizer_cache(
        root / "tokenizers", tokenizer_cache.load_bpe(python=str(python)), include_sdxl=False
    )
    install = SdScriptsInstall(
        python=python, scripts_dir=Path(os.environ["ATELIER_SD_SCRIPTS_DIR"]), tokenizer_cache_dir=tokenizers.parent
    )
    return Engine("sd-scripts", install, Path(os.environ["ATELIER_TEST_SD15_FULL_CHECKPOINT"]), dict(os.environ))


def shapes() -> list[DatasetPhoto]:
    """Four distinct, sharp 320 px drawings (a style subject: no face needed)."""
    photos = []
    for index, (colour, box) in enumerate([("red", 40), ("green", 80), ("blue", 120), ("orange", 60)]):
        image = Image.new("RGB", (320, 320), "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse((box, box, 320 - box // 2, 300), fill=colour, outline="black", width=6)
        draw.rectangle((10 + index * 30, 10, 60 + index * 30, 290 - index * 40), fill="black")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        photos.append(DatasetPhoto(f"shape{index}", buffer.getvalue()))
    return photos


def make_spec(engine: Engine, root: Path, *, empty: bool = False, base: Path | None = None) -> LaunchSpec:
    options = PrepareOptions(resolution=64, repeats=1)
    manifest = prepare_dataset(root / "data", shapes(), trigger="labshape", kind=SubjectKind.STYLE, options=options)
    if empty:
        for image in (root / "data" / manifest.image_dir).iterdir():
            image.unlink()
    request = TrainingRequest(
        family="sd15",
        base_model=base or engine.base_model,
        cpu=True,
        steps=6,
        save_every_n_steps=3,
        resolution=64,
        batch_size=1,
        network_dim=4,
        network_alpha=4,
        learning_rate=1e-4,
        sample_prompts=[{"prompt": "labshape, a red circle", "width": 64, "height": 64, "steps": 2, "seed": 1}],
    )
    plan = resolve_request(request)
    return write_run_files(plan, manifest, root / "data", engine.install, RunLayout(root / "run", "lab_lora"))


def supervise(engine: Engine, spec: LaunchSpec) -> TrainingProcess:
    return TrainingProcess(spec, SupervisorOptions(env=engine.env, sigint_grace_s=60))


def shape_of(events: list[SupervisorEvent]) -> list[tuple[str, object]]:
    """Event types with their step (or status), for comparing runs across engines."""
    out: list[tuple[str, object]] = []
    for event in events:
        detail = getattr(event, "step", None)
        if isinstance(event, Outcome):
            detail = event.status.value
        out.append((type(event).__name__, detail))
    return out


async def test_training_run(engine: Engine, tmp_path: Path) -> None:
    process = supervise(engine, make_spec(engine, tmp_path))
    await process.start()
    events = [event async for event in process.events()]
    assert shape_of(events) == [
        ("Started", None),
        ("Progress", 0),
        ("Progress", 1),
        ("Progress", 2),
        ("SampleSaved", 3),
        ("CheckpointSaved", 3),
        ("StateSaved", 3),
        ("Progress", 3),
        ("Progress", 4),
        ("Progress", 5),
        ("SampleSaved", 6),
        ("CheckpointSaved", 6),
        ("StateSaved", 6),
        ("Progress", 6),
        ("StateSaved", 6),
        ("ModelSaved", None),
        ("Outcome", "succeeded"),
    ]
    steps = [e for e in events if isinstance(e, Progress) and e.step > 0]
    assert [e.epoch for e in steps] == [1, 1, 1, 1, 2, 2]  # 4 images x 1 repeat, batch 1
    assert all(e.loss is not None and e.lr == pytest.approx(1e-4) for e in steps)
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.group_clean
    assert outcome.model_path is not None
    with safe_open(str(outcome.model_path), "np") as lora:
        metadata = lora.metadata()
        names = list(lora.keys())
    assert (metadata["ss_network_dim"], metadata["ss_steps"], metadata["ss_output_name"]) == ("4", "6", "lab_lora")
    assert any(name.startswith("lora_unet_") and name.endswith(".lora_down.weight") for name in names)


async def test_cancel(engine: Engine, tmp_path: Path) -> None:
    process = supervise(engine, make_spec(engine, tmp_path))
    await process.start()
    async for event in process.events():
        if isinstance(event, Progress) and event.step >= 1:
            await process.cancel()
    outcome = await process.wait()
    assert outcome.status is OutcomeStatus.CANCELLED
    assert outcome.signals_sent == ("SIGINT",)
    assert outcome.returncode == -signal.SIGINT
    assert "KeyboardInterrupt" in outcome.stderr_tail
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pgid, 0)


@pytest.mark.parametrize(
    ("case", "expected", "returncode"),
    [
        ("empty_dataset", FailureClass.BAD_DATASET, 0),
        ("missing_model", FailureClass.MISSING_MODEL, 1),
        ("unknown_argument", FailureClass.BAD_ARGUMENTS, 2),
    ],
)
async def test_bad_inputs(engine: Engine, tmp_path: Path, case: str, expected: FailureClass, returncode: int) -> None:
    missing = tmp_path / "models" / "nope.safetensors"
    spec = make_spec(engine, tmp_path, empty=case == "empty_dataset", base=missing if case == "missing_model" else None)
    if case == "unknown_argument":
        spec = spec.with_extra_args("--bogus_flag", "1")
    process = supervise(engine, spec)
    await process.start()
    outcome = await process.wait()
    assert outcome.failure is not None, outcome
    assert (outcome.failure.failure_class, outcome.returncode) == (expected, returncode), outcome.stderr_tail[-5:]
    assert not outcome.failure.retryable


async def test_resume_after_cancel(engine: Engine, tmp_path: Path) -> None:
    spec = make_spec(engine, tmp_path)
    first = supervise(engine, spec)
    await first.start()
    async for event in first.events():
        if isinstance(event, StateSaved) and event.step == 3:
            await first.cancel()
    assert (await first.wait()).status is OutcomeStatus.CANCELLED
    resumed = resume_from_run_dir(spec)
    assert resumed is not None
    second = supervise(engine, resumed)
    await second.start()
    events = [event async for event in second.events()]
    assert [e.step for e in events if isinstance(e, Progress)] == [3, 4, 5, 6]
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.status is OutcomeStatus.SUCCEEDED
