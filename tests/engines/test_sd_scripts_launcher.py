"""Real kohya sd-scripts (``train_network.py``) run through ``trainer/launcher.py`` on the CPU.

Runs only where sd-scripts is installed: set ``ATELIER_SD_SCRIPTS_DIR`` (the checkout),
``ATELIER_SD_SCRIPTS_PYTHON`` (its venv's python) and ``ATELIER_TEST_SD15_FULL_CHECKPOINT`` (a
full-size SD1.5 checkpoint; random weights do). The CLIP tokenizer cache is built with
``trainer.tokenizer_cache`` from the BPE file of ``clip-anytorch``/``open_clip_torch`` installed in
that python, or from ``ATELIER_CLIP_BPE`` (a ``bpe_simple_vocab_16e6.txt.gz`` or a wheel holding
it). Everything runs offline (``HF_HUB_OFFLINE=1``): 6 LoRA steps at 64 px on 4 generated images,
about a minute per run on 2 cores, ~6.7 GB RSS.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from trainer import launcher, tokenizer_cache
from trainer.protocol import decode_record

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1800)]

REQUIRED = ("ATELIER_SD_SCRIPTS_DIR", "ATELIER_SD_SCRIPTS_PYTHON", "ATELIER_TEST_SD15_FULL_CHECKPOINT")
MISSING = [name for name in REQUIRED if not os.environ.get(name)]
if MISSING:
    pytest.skip(
        f"ENGINE TEST SKIPPED: set {', '.join(REQUIRED)} to run real sd-scripts through the launcher "
        f"(missing: {', '.join(MISSING)})",
        allow_module_level=True,
    )

SD_DIR = Path(os.environ["ATELIER_SD_SCRIPTS_DIR"])
SD_PYTHON = os.environ["ATELIER_SD_SCRIPTS_PYTHON"]
CHECKPOINT = Path(os.environ["ATELIER_TEST_SD15_FULL_CHECKPOINT"])
PROMPT = "labshape, a red circle"
SHAPES = [("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "circle")]


@dataclass(frozen=True)
class Lab:
    """Inputs shared by the runs: dataset, sample prompts, tokenizer cache, scratch root."""

    root: Path
    train_dir: Path
    prompts: Path
    tokenizer_dir: Path


@dataclass(frozen=True)
class Run:
    """One finished launcher run."""

    returncode: int
    records: list[dict[str, Any]]
    output_dir: Path
    stderr: str


def _bpe_bytes() -> bytes:
    override = os.environ.get("ATELIER_CLIP_BPE")
    if override:
        path = Path(override)
        return tokenizer_cache.bpe_from_wheel(path) if path.suffix in {".whl", ".zip"} else path.read_bytes()
    try:
        return tokenizer_cache.load_bpe(python=SD_PYTHON)
    except tokenizer_cache.BpeNotFoundError:
        pytest.skip(
            "ENGINE TEST SKIPPED: no CLIP BPE file: install clip-anytorch (or open_clip_torch) into sd-scripts' "
            "venv, or set ATELIER_CLIP_BPE"
        )


def _draw_dataset(train_dir: Path) -> None:
    train_dir.mkdir(parents=True)
    for index, (color, shape) in enumerate(SHAPES):
        image = Image.new("RGB", (64, 64), "white")
        draw = ImageDraw.Draw(image)
        if shape == "circle":
            draw.ellipse((12, 12, 52, 52), fill=color)
        elif shape == "square":
            draw.rectangle((14, 14, 50, 50), fill=color)
        else:
            draw.polygon([(32, 10), (54, 52), (10, 52)], fill=color)
        image.save(train_dir / f"img{index}.png")
        (train_dir / f"img{index}.txt").write_text(f"labshape, a {color} {shape}", encoding="utf-8")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    for path in (SD_DIR / "train_network.py", Path(SD_PYTHON), CHECKPOINT):
        assert path.exists(), f"configured for sd-scripts engine tests, but {path} does not exist"
    root = tmp_path_factory.mktemp("sd_scripts_lab")
    [tokenizer_dir] = tokenizer_cache.build_tokenizer_cache(root / "tokenizers", _bpe_bytes(), include_sdxl=False)
    vocab = json.loads((tokenizer_dir / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    _draw_dataset(root / "data" / "1_labshape")
    prompts = root / "prompts.txt"
    prompts.write_text(f"{PROMPT} --w 64 --h 64 --s 2 --d 1\n", encoding="utf-8")
    return Lab(root, root / "data", prompts, root / "tokenizers")


def _train(lab: Lab, name: str, *extra: str) -> Run:
    """Run train_network.py through the launcher: 6 steps, a checkpoint every 3."""
    out = lab.root / name
    args = [
        *("--pretrained_model_name_or_path", str(CHECKPOINT), "--tokenizer_cache_dir", str(lab.tokenizer_dir)),
        *("--train_data_dir", str(lab.train_dir), "--caption_extension", ".txt", "--resolution", "64"),
        *("--network_module", "networks.lora", "--network_dim", "4", "--network_alpha", "4"),
        *("--max_train_steps", "6", "--train_batch_size", "1", "--learning_rate", "1e-4"),
        *("--optimizer_type", "AdamW", "--cache_latents", "--mixed_precision", "no"),
        *("--save_model_as", "safetensors", "--save_every_n_steps", "3", "--max_data_loader_n_workers", "0"),
        *("--seed", "42", "--output_dir", str(out), "--output_name", "lab_lora", *extra),
    ]
    events_path = lab.root / f"{name}.events.jsonl"
    with events_path.open("wb") as events, (lab.root / f"{name}.stderr").open("w+b") as stderr:
        fd = events.fileno()
        command = [SD_PYTHON, str(Path(launcher.__file__)), "--events-fd", str(fd), "--sd-scripts-dir", str(SD_DIR)]
        result = subprocess.run(
            [*command, "--", "train_network.py", *args],
            pass_fds=(fd,),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=1500,
            check=False,
        )
        stderr.seek(0)
        stderr_text = stderr.read().decode(errors="replace")
    records = [decode_record(line) for line in events_path.read_text(encoding="utf-8").splitlines()]
    return Run(result.returncode, records, out, stderr_text)


def _kinds(run: Run) -> list[str]:
    return [f"{r['type']}:{r['step']}" if "step" in r else r["type"] for r in run.records]


def _safetensors_metadata(path: Path) -> dict[str, str]:
    with path.open("rb") as file:
        header_len = int.from_bytes(file.read(8), "little")
        header: dict[str, Any] = json.loads(file.read(header_len))
    metadata: dict[str, str] = header.get("__metadata__", {})
    return metadata


@pytest.fixture(scope="module")
def first_run(lab: Lab) -> Run:
    extra = ("--save_state", "--sample_every_n_steps", "3", "--sample_prompts", str(lab.prompts))
    return _train(lab, "out", *extra, "--sample_sampler", "euler_a")


def test_six_step_run_reports_steps_checkpoints_states_samples_and_the_model(first_run: Run) -> None:
    run, out = first_run, first_run.output_dir
    assert run.returncode == 0, run.stderr[-3000:]
    assert _kinds(run) == [
        "run_started",
        *("step:1", "step:2", "sample_saved:3", "checkpoint_saved:3", "state_saved:3", "step:3"),
        *("step:4", "step:5", "sample_saved:6", "checkpoint_saved:6", "state_saved:6", "step:6"),
        *("state_saved:6", "model_saved", "run_finished"),
    ]
    started = run.records[0]
    assert (started["script"], started["total_steps"], started["num_epochs"], started["resume_step"]) == (
        "train_network.py",
        6,
        2,
        0,
    )
    steps = [r for r in run.records if r["type"] == "step"]
    assert all(math.isfinite(s["loss"]) and math.isfinite(s["avg_loss"]) for s in steps), steps
    assert [s["epoch"] for s in steps] == [1, 1, 1, 1, 2, 2]
    assert all(s["lr"] == pytest.approx(1e-4) for s in steps)
    by_kind = {f"{r['type']}:{r.get('step')}": r for r in run.records}
    assert by_kind["checkpoint_saved:3"]["path"] == str(out / "lab_lora-step00000003.safetensors")
    state = Path(by_kind["state_saved:3"]["path"])
    assert state == out / "lab_lora-step00000003-state"
    assert json.loads((state / "train_state.json").read_text(encoding="utf-8"))["current_step"] == 3
    sample = by_kind["sample_saved:3"]
    assert sample["prompt"] == PROMPT
    assert Path(sample["path"]).parent == out / "sample"
    with Image.open(sample["path"]) as image:
        assert image.size == (64, 64)
    assert by_kind["state_saved:6"]["path"] == str(out / "lab_lora-state")  # the last one wins in by_kind
    model = Path(by_kind["model_saved:None"]["path"])
    assert model == out / "lab_lora.safetensors"
    assert _safetensors_metadata(model)["ss_steps"] == "6"
    assert all(Path(r["path"]).exists() for r in run.records if "path" in r)
    assert run.records[-1]["ok"] is True


def test_resume_with_skip_until_initial_step_continues_at_the_saved_step(lab: Lab, first_run: Run) -> None:
    state = first_run.output_dir / "lab_lora-step00000003-state"
    run = _train(lab, "resumed", "--resume", str(state), "--skip_until_initial_step")
    assert run.returncode == 0, run.stderr[-3000:]
    assert _kinds(run) == [
        *("run_started", "step:4", "step:5", "checkpoint_saved:6", "step:6", "model_saved", "run_finished"),
    ]
    assert (run.records[0]["resume_step"], run.records[0]["total_steps"]) == (3, 6)
    assert [r["epoch"] for r in run.records if r["type"] == "step"] == [1, 2, 2]


def test_plain_resume_restarts_sd_scripts_step_count_at_one(lab: Lab, first_run: Run) -> None:
    """Without --skip_until_initial_step sd-scripts loads the state but trains max_train_steps anew."""
    state = first_run.output_dir / "lab_lora-step00000003-state"
    run = _train(lab, "resumed_plain", "--resume", str(state))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.records[0]["resume_step"] == 0
    assert [r["step"] for r in run.records if r["type"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert "load train state from" in run.stderr
