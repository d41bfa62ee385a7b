"""A stand-in for ``trainer/launcher.py`` + sd-scripts, for tests and CI (standard library only).

Invoked exactly like the launcher::

    python fake_sd_trainer.py --events-fd N --sd-scripts-dir DIR -- train_network.py \
        --dataset_config dataset.toml --config_file config.toml [--resume STATE --skip_until_initial_step]

It reads the two TOML files the way sd-scripts does (config sections flattened), writes the protocol records
of ``trainer/protocol.py`` (artifacts of step N before the step N record, as the launcher reports them),
prints sd-scripts-like lines (tqdm bars with ``\\r`` on stderr), and writes a real small ``.safetensors``
LoRA with kohya tensor names and ``ss_*`` metadata, intermediate checkpoints, ``--save_state`` folders
(``train_state.json`` and accelerate's files) and sample PNGs under ``<output_dir>/sample``.

Like sd-scripts it exits 0 without a LoRA when the dataset folder has no images, and fails when the base
model file does not exist. Signals behave like the recordings: SIGINT raises ``KeyboardInterrupt`` (a
traceback, exit by signal 2), SIGTERM kills (signal 15). Knobs, all optional environment variables:

``FAKE_SD_STEP_DELAY``   seconds of simulated work per step (default 0)
``FAKE_SD_FAIL``         fail the way sd-scripts does, replaying the recorded output where there is one:
                         ``unknown_arg`` (exit 2), ``missing_model``, ``no_tokenizer``, ``corrupt_image``
                         (exit 1), ``empty_dataset`` (exit 0, no LoRA), ``cuda_oom``, ``cpu_oom``, ``crash``
                         (exit 1 at a step), ``oom_kill`` (SIGKILLs itself at a step)
``FAKE_SD_FAIL_AT_STEP`` the step at which the step-time failures happen (default 1)
``FAKE_SD_NO_OUTPUT``    ``1``: finish with exit 0 but write no final LoRA
``FAKE_SD_FORK_CHILD``   ``1``: fork a child into the process group that ignores SIGINT and SIGTERM and
                         keeps the inherited pipes open (like a data-loader worker) until it is killed
``FAKE_SD_IGNORE_SIGINT`` / ``FAKE_SD_IGNORE_SIGTERM``  ``1``: ignore that signal
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import random
import shutil
import signal
import sys
import time
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE.parent / "fixtures" / "sd_scripts"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"BM")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


protocol = _load("_fake_protocol", HERE.parents[1] / "trainer" / "protocol.py")
files = _load("_fake_files", HERE / "fake_files.py")


class Events:
    """Protocol records to the inherited fd; silent in forked children, quiet once the reader is gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()

    def __call__(self, record_type: str, **fields: Any) -> None:
        if os.getpid() != self.pid:
            return
        data = protocol.encode_record(record_type, **fields)
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            self.fd = -1


def parse_command_line(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    """The launcher's options before ``--``, then the training script's own (unknown ones: exit 2)."""
    launcher = argparse.ArgumentParser(prog="fake_sd_trainer.py")
    launcher.add_argument("--events-fd", type=int, required=True)
    launcher.add_argument("--sd-scripts-dir", type=Path, required=True)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        launcher.error("expected '-- SCRIPT [ARGS...]'")
    split = argv.index("--")
    outer = launcher.parse_args(argv[:split])
    script = argparse.ArgumentParser(prog=argv[split + 1])
    script.add_argument("--dataset_config", type=Path, required=True)
    script.add_argument("--config_file", type=Path, required=True)
    script.add_argument("--resume")
    script.add_argument("--skip_until_initial_step", action="store_true")
    inner = script.parse_args(argv[split + 2 :])
    inner.script = argv[split + 1]
    return outer, inner


def read_config(path: Path) -> dict[str, Any]:
    """sd-scripts' ``read_config_from_file``: sections are merged into one flat namespace."""
    flat: dict[str, Any] = {}
    for key, value in tomllib.loads(path.read_text(encoding="utf-8")).items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def say(text: str) -> None:
    """A line on stdout, flushed (sd-scripts runs with PYTHONUNBUFFERED=1 under the supervisor)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def replay(case: str, *, stdout: bool = True) -> None:
    """Write a recorded run's stdout and stderr (the recordings are test fixtures)."""
    folder = RECORDINGS / case
    if stdout and (folder / "stdout.txt").exists():
        sys.stdout.write((folder / "stdout.txt").read_text(encoding="utf-8"))
        sys.stdout.flush()
    sys.stderr.write((folder / "stderr.txt").read_text(encoding="utf-8"))
    sys.stderr.flush()


def fail_like(events: Events, case: str, exc_type: str, message: str, code: int) -> None:
    """Replay a recorded failure, report it as the launcher would, exit with sd-scripts' status."""
    replay(case)
    events("error", exc_type=exc_type, message=message)
    events("run_finished", ok=False)
    sys.exit(code)


RECORDED_FAILURES = {
    "unknown_arg": ("bad_unknown_arg", "SystemExit", "2", 2),
    "missing_model": ("bad_missing_model", "ValueError", "is neither a valid local path nor a valid repo id", 1),
    "no_tokenizer": ("bad_no_tokenizer", "TypeError", "expected str, bytes or os.PathLike object, not NoneType", 1),
    "corrupt_image": ("bad_corrupt_image", "ZeroDivisionError", "division by zero", 1),
}
STEP_FAILURES = {
    "cuda_oom": (
        "OutOfMemoryError",
        "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 7.63 GiB of which "
        "3.06 MiB is free.",
    ),
    "cpu_oom": (
        "RuntimeError",
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
        "allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)",
    ),
    "crash": ("RuntimeError", "simulated crash inside the training step"),
}


def count_images(dataset_config: Path) -> tuple[int, int, bool]:
    """(images x repeats, batch size, every file looks like an image) over the dataset's subsets."""
    config = tomllib.loads(dataset_config.read_text(encoding="utf-8"))
    total, batch, readable = 0, 1, True
    for dataset in config.get("datasets", []):
        batch = int(dataset.get("batch_size", 1))
        for subset in dataset.get("subsets", []):
            folder = Path(subset["image_dir"])
            images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []
            readable = readable and all(p.read_bytes()[:4].startswith(IMAGE_MAGIC) for p in images)
            total += len(images) * int(subset.get("num_repeats", 1))
    return total, batch, readable


class FakeRun:
    """One simulated training run."""

    def __init__(self, events: Events, args: argparse.Namespace, config: dict[str, Any]) -> None:
        self.events = events
        self.args = args
        self.config = config
        self.output_dir = Path(config["output_dir"])
        self.name = str(config.get("output_name") or "last")
        self.total = int(config.get("max_train_steps", 1600))
        self.delay = float(os.environ.get("FAKE_SD_STEP_DELAY", "0") or 0)
        self.fail = os.environ.get("FAKE_SD_FAIL", "")
        self.fail_at = int(os.environ.get("FAKE_SD_FAIL_AT_STEP", "1") or 1)
        self.rng = random.Random(int(config.get("seed", 0)))
        self.started_at = time.time()
        self.losses: list[float] = []

    def lora(self, step: int, epoch: int) -> bytes:
        dim = int(self.config.get("network_dim", 4))
        alpha = float(self.config.get("network_alpha", 1.0))
        metadata = {
            "ss_network_module": str(self.config.get("network_module", "networks.lora")),
            "ss_network_dim": str(dim),
            "ss_network_alpha": str(alpha),
            "ss_output_name": self.name,
            "ss_steps": str(step),
            "ss_epoch": str(epoch),
            "ss_max_train_steps": str(self.total),
            "ss_learning_rate": str(self.config.get("learning_rate", 1e-4)),
            "ss_sd_model_name": Path(str(self.config.get("pretrained_model_name_or_path", ""))).name,
            "ss_training_started_at": str(self.started_at),
            "ss_training_finished_at": str(time.time()),
            "ss_seed": str(self.config.get("seed", "None")),
            "modelspec.title": self.name,
            "modelspec.architecture": "stable-diffusion-v1/lora",
        }
        return files.lora_bytes(dim, alpha, step, metadata)

    def save_checkpoint(self, step: int, epoch: int, every_save: int) -> None:
        path = self.output_dir / f"{self.name}-step{step:08d}.safetensors"
        say(f"\nsaving checkpoint: {path}")
        files.write_atomically(path, self.lora(step, epoch))
        self.events("checkpoint_saved", step=step, path=str(path))
        if self.config.get("save_state"):
            state = self.output_dir / f"{self.name}-step{step:08d}-state"
            files.write_state_dir(state, self.lora(step, epoch), epoch, step)
            self.events("state_saved", step=step, path=str(state))
            self.remove_old_state(step, int(every_save))

    def remove_old_state(self, step: int, every: int) -> None:
        """sd-scripts' ``save_last_n_steps_state``: drop the state that fell out of the window."""
        keep = self.config.get("save_last_n_steps_state")
        if not keep:
            return
        old = step - int(keep) - 1
        old -= old % every
        if old > 0:
            shutil.rmtree(self.output_dir / f"{self.name}-step{old:08d}-state", ignore_errors=True)

    def save_samples(self, step: int) -> None:
        prompts_file = self.config.get("sample_prompts")
        if not prompts_file:
            return
        lines = Path(prompts_file).read_text(encoding="utf-8").splitlines()
        prompts = [line for line in lines if line.strip() and not line.startswith("#")]
        stamp = time.strftime("%Y%m%d%H%M%S")
        for index, line in enumerate(prompts):
            prompt, _, options = line.partition(" --")
            seed = next((o[2:].strip() for o in f"-{options}".split(" --") if o.startswith("d ")), "")
            path = (
                self.output_dir
                / "sample"
                / f"{self.name}_{step:06d}_{index:02d}_{stamp}{'_' + seed if seed else ''}.png"
            )
            files.write_atomically(path, files.png_bytes(64, 64, step + index))
            self.events("sample_saved", step=step, path=str(path), prompt=prompt.strip())

    def loss(self, step: int) -> float:
        value = 0.08 + 0.12 * math.exp(-3.0 * step / self.total) + self.rng.uniform(-0.02, 0.02)
        self.losses.append(value)
        return value

    def step(self, step: int, per_epoch: int) -> None:
        if self.delay:
            time.sleep(self.delay)  # simulated work, where a real step computes
        if step == self.fail_at and self.fail in STEP_FAILURES:
            exc_type, message = STEP_FAILURES[self.fail]
            where = '  File "train_network.py", line 1427, in train\n'
            sys.stderr.write(f"Traceback (most recent call last):\n{where}{exc_type}: {message}\n")
            self.events("error", exc_type=exc_type, message=message)
            self.events("run_finished", ok=False)
            sys.exit(1)
        if step == self.fail_at and self.fail == "oom_kill":
            os.kill(os.getpid(), signal.SIGKILL)
        epoch = (step - 1) // per_epoch + 1
        loss = self.loss(step)
        average = sum(self.losses[-per_epoch:]) / len(self.losses[-per_epoch:])
        percent = 100 * step // self.total
        sys.stderr.write(
            f"\rsteps: {percent:3d}%| | {step}/{self.total} [00:01<00:01, 1.00it/s, avr_loss={average:.3g}]"
        )
        sys.stderr.flush()
        every_sample = self.config.get("sample_every_n_steps")
        if every_sample and step % int(every_sample) == 0:
            self.save_samples(step)
        every_save = self.config.get("save_every_n_steps")
        if every_save and step % int(every_save) == 0:
            self.save_checkpoint(step, epoch, int(every_save))
        lr = float(self.config.get("learning_rate", 1e-4))
        self.events("step", step=step, total_steps=self.total, epoch=epoch, loss=loss, avg_loss=average, lr=lr)

    def finish(self, epoch: int) -> None:
        """End of training, in sd-scripts' order: the last state, then the final LoRA."""
        if self.config.get("save_state"):
            state = self.output_dir / f"{self.name}-state"
            files.write_state_dir(state, self.lora(self.total, epoch), epoch, self.total)
            self.events("state_saved", step=self.total, path=str(state))
        if os.environ.get("FAKE_SD_NO_OUTPUT") != "1":
            path = self.output_dir / f"{self.name}.safetensors"
            say(f"\nsaving checkpoint: {path}")
            files.write_atomically(path, self.lora(self.total, epoch))
            self.events("model_saved", path=str(path))
        say("model saved.")

    def run(self, images: int, batch: int) -> None:
        per_epoch = max(1, math.ceil(images / batch))
        epochs = math.ceil(self.total / per_epoch)
        start = 0
        if self.args.resume and self.args.skip_until_initial_step:
            start = files.read_state_step(Path(self.args.resume))
        say("running training / 学習開始")
        say(f"  num train images * repeats / 学習画像の数\u00d7繰り返し回数: {images}")
        say(f"  total optimization steps / 学習ステップ数: {self.total}")
        self.events(
            "run_started",
            script=self.args.script,
            total_steps=self.total,
            num_epochs=epochs,
            resume_step=start,
            pid=os.getpid(),
        )
        for step in range(start + 1, self.total + 1):
            self.step(step, per_epoch)
        self.finish(epochs)
        self.events("run_finished", ok=True)


def fork_lingering_child() -> None:
    """A child in our process group that only SIGKILL ends, holding our pipes open."""
    if os.fork() == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            signal.pause()


def main(argv: list[str]) -> None:
    """Run the stand-in: parse, check inputs the way sd-scripts would, train, report."""
    outer, args = parse_command_line(argv)
    events = Events(outer.events_fd)
    os.set_inheritable(outer.events_fd, False)
    if not outer.sd_scripts_dir.is_dir():
        sys.exit(f"--sd-scripts-dir {outer.sd_scripts_dir} is not a directory")
    os.chdir(outer.sd_scripts_dir)
    if os.environ.get("FAKE_SD_IGNORE_SIGINT") == "1":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("FAKE_SD_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("FAKE_SD_FORK_CHILD") == "1":
        fork_lingering_child()
    config = read_config(args.config_file)
    fail = os.environ.get("FAKE_SD_FAIL", "")
    try:
        images, batch, readable = count_images(args.dataset_config)
        if fail in RECORDED_FAILURES:
            fail_like(events, *RECORDED_FAILURES[fail])
        if fail == "empty_dataset" or images == 0:
            replay("bad_empty_dir")
            events("run_finished", ok=True)
            return
        if not readable:
            fail_like(events, *RECORDED_FAILURES["corrupt_image"])
        if not Path(str(config.get("pretrained_model_name_or_path", ""))).is_file():
            fail_like(events, *RECORDED_FAILURES["missing_model"])
        FakeRun(events, args, config).run(images, batch)
    except (KeyboardInterrupt, Exception) as exc:
        events("error", exc_type=type(exc).__name__, message=str(exc)[:2000])
        events("run_finished", ok=False)
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
