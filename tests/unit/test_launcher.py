"""The sd-scripts launcher against a fake sd-scripts checkout (see ``test_launcher_fakes``).

Each run is a real subprocess of the launcher, so the post-import hooks, ``runpy``, exit codes and
signals are the real ones; only the training script and the libraries it calls are stand-ins.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_launcher_fakes import write_fake_sd_scripts
from trainer import launcher
from trainer.protocol import decode_record

LAUNCHER = Path(launcher.__file__)


@pytest.fixture
def sd_dir(tmp_path: Path) -> Path:
    return write_fake_sd_scripts(tmp_path / "sd-scripts")


@pytest.fixture
def bare_sd_dir(tmp_path: Path) -> Path:
    return write_fake_sd_scripts(tmp_path / "sd-scripts-bare", with_hook_points=False)


def _launch(sd: Path, out: Path, *script_args: str, **popen: Any) -> subprocess.Popen[bytes]:
    events = os.open(out.parent / f"{out.name}.events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        command = [sys.executable, str(LAUNCHER), "--events-fd", str(events), "--sd-scripts-dir", str(sd), "--"]
        command += ["fake_train.py", "--output_dir", str(out), *script_args]
        return subprocess.Popen(command, pass_fds=(events,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    finally:
        os.close(events)


def _records(out: Path) -> list[dict[str, Any]]:
    text = (out.parent / f"{out.name}.events.jsonl").read_text(encoding="utf-8")
    return [decode_record(line) for line in text.splitlines()]


def _run(sd: Path, out: Path, *script_args: str) -> tuple[int, list[dict[str, Any]], str]:
    process = _launch(sd, out, *script_args)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, _records(out), stderr.decode()


def _kinds(records: list[dict[str, Any]]) -> list[str]:
    return [f"{r['type']}:{r['step']}" if "step" in r else r["type"] for r in records]


def test_normal_run_reports_every_step_and_artifact_in_order(sd_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, records, stderr = _run(sd_dir, out, "--save_every_n_steps", "3", "--save_state", "--sample_every_n_steps", "3")
    assert rc == 0, stderr
    assert _kinds(records) == [
        "run_started",
        "step:1",
        "step:2",
        "sample_saved:3",
        "sample_saved:3",
        "checkpoint_saved:3",
        "state_saved:3",
        "step:3",
        "step:4",
        "step:5",
        "sample_saved:6",
        "sample_saved:6",
        "checkpoint_saved:6",
        "state_saved:6",
        "step:6",
        "state_saved:6",
        "model_saved",
        "run_finished",
    ]
    started = records[0]
    assert (started["script"], started["total_steps"], started["num_epochs"], started["resume_step"]) == (
        "fake_train.py",
        6,
        2,
        0,
    )
    steps = [r for r in records if r["type"] == "step"]
    assert [s["loss"] for s in steps] == pytest.approx([1.5 - n / 10 for n in range(1, 7)])
    assert steps[2]["avg_loss"] == pytest.approx((1.4 + 1.3 + 1.2) / 3)
    assert [s["epoch"] for s in steps] == [1, 1, 1, 1, 2, 2]
    assert {s["lr"] for s in steps} == {1e-4}
    assert {s["total_steps"] for s in steps} == {6}
    samples = [r for r in records if r["type"] == "sample_saved"]
    assert [s["prompt"] for s in samples[:2]] == ["labshape, a red circle", "labshape, a blue triangle"]
    assert samples[0]["path"] == str(out / "sample" / "sample_000003_00.png")
    assert records[5]["path"] == str(out / "lab_lora-step00000003.safetensors")
    assert records[6]["path"] == str(out / "lab_lora-step00000003-state")
    assert records[-3]["path"] == str(out / "lab_lora-state")
    assert records[-2]["path"] == str(out / "lab_lora.safetensors")
    assert records[-1]["ok"] is True
    assert all(Path(r["path"]).exists() for r in records if "path" in r)


def test_script_runs_as_if_started_directly_in_the_checkout(sd_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, _, stderr = _run(sd_dir, out)
    assert rc == 0, stderr
    cwd, argv0, path0 = (out / "cwd_and_argv.txt").read_text(encoding="utf-8").splitlines()
    assert (cwd, argv0, path0) == (str(sd_dir), str(sd_dir / "fake_train.py"), str(sd_dir))


def test_samples_at_first_are_held_until_run_started(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, stderr = _run(sd_dir, tmp_path / "out", "--sample_at_first", "--max_train_steps", "1")
    assert rc == 0, stderr
    assert _kinds(records) == [
        "run_started",
        "sample_saved:0",
        "sample_saved:0",
        "step:1",
        "model_saved",
        "run_finished",
    ]


def test_resumed_run_counts_from_the_initial_step(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, stderr = _run(sd_dir, tmp_path / "out", "--initial_step", "3")
    assert rc == 0, stderr
    assert records[0]["resume_step"] == 3
    assert records[0]["total_steps"] == 6
    assert [r["step"] for r in records if r["type"] == "step"] == [4, 5, 6]


def test_gradient_accumulation_counts_optimizer_steps_per_epoch(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, stderr = _run(sd_dir, tmp_path / "out", "--gradient_accumulation_steps", "2", "--epoch_len", "4")
    assert rc == 0, stderr
    assert records[0]["num_epochs"] == 3  # 6 steps, ceil(4 batches / 2) = 2 optimizer steps per epoch


def test_fallbacks_carry_a_run_without_loss_recorder_sampling_hook_or_end_training(
    bare_sd_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    rc, records, stderr = _run(bare_sd_dir, out, "--save_every_n_steps", "3", "--sample_every_n_steps", "3")
    assert rc == 0, stderr
    assert "failed" not in stderr
    assert _kinds(records) == [
        "run_started",
        "step:1",
        "step:2",
        "step:3",
        "sample_saved:3",
        "sample_saved:3",
        "checkpoint_saved:3",
        "step:4",
        "step:5",
        "step:6",
        "sample_saved:6",
        "sample_saved:6",
        "checkpoint_saved:6",
        "model_saved",
        "run_finished",
    ]
    steps = [r for r in records if r["type"] == "step"]
    assert [s["loss"] for s in steps] == pytest.approx([1.5 - n / 10 for n in range(1, 7)])
    assert {s["avg_loss"] for s in steps} == {None}
    assert [s["epoch"] for s in steps] == [1, 1, 1, 1, 2, 2]
    samples = [r for r in records if r["type"] == "sample_saved"]
    assert {s["prompt"] for s in samples} == {""}
    assert samples[0]["path"] == str(out / "sample" / "plain_000003_00.png")
    assert records[-2]["path"] == str(out / "lab_lora.safetensors")


def test_exception_is_reported_then_reraised_with_pythons_exit_status(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, stderr = _run(sd_dir, tmp_path / "out", "--fail", "raise", "--fail_at", "2")
    assert rc == 1
    assert "ValueError: boom at step 2" in stderr
    assert _kinds(records) == ["run_started", "step:1", "step:2", "error", "run_finished"]
    assert (records[-2]["exc_type"], records[-2]["message"]) == ("ValueError", "boom at step 2")
    assert records[-1]["ok"] is False


def test_sys_exit_keeps_its_code(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, _ = _run(sd_dir, tmp_path / "out", "--fail", "exit", "--fail_at", "1")
    assert rc == 3
    assert (records[-2]["type"], records[-2]["exc_type"], records[-2]["message"]) == ("error", "SystemExit", "3")
    assert records[-1] == {**records[-1], "type": "run_finished", "ok": False}


def test_argparse_error_of_the_script_exits_2_before_run_started(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, stderr = _run(sd_dir, tmp_path / "out", "--no_such_option")
    assert rc == 2
    assert "unrecognized arguments: --no_such_option" in stderr
    assert [r["type"] for r in records] == ["error", "run_finished"]


def test_keyboard_interrupt_ends_the_process_as_python_does(sd_dir: Path, tmp_path: Path) -> None:
    rc, records, stderr = _run(sd_dir, tmp_path / "out", "--fail", "interrupt", "--fail_at", "1")
    assert rc == -signal.SIGINT
    assert "KeyboardInterrupt" in stderr
    assert records[-2]["exc_type"] == "KeyboardInterrupt"
    assert records[-1]["ok"] is False


def test_sigterm_kills_as_it_would_kill_sd_scripts(sd_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = _launch(sd_dir, out, "--fail", "wait", stdin=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM
    assert [r["type"] for r in _records(out)] == ["run_started"]


def test_training_goes_on_quietly_when_the_reader_is_gone(sd_dir: Path, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = tmp_path / "out"
    command = [sys.executable, str(LAUNCHER), "--events-fd", str(write_end), "--sd-scripts-dir", str(sd_dir)]
    command += ["--", "fake_train.py", "--output_dir", str(out), "--save_every_n_steps", "3"]
    try:
        result = subprocess.run(command, pass_fds=(write_end,), capture_output=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert (out / "finished.txt").read_text(encoding="utf-8") == "done"
    assert (out / "lab_lora.safetensors").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--events-fd", "1", "--sd-scripts-dir", "."], "missing '--'"),
        (["--events-fd", "1", "--sd-scripts-dir", ".", "--"], "no training script"),
        (["--events-fd", "1", "--sd-scripts-dir", "/no/such/dir", "--", "x.py"], "is not a directory"),
        (["--events-fd", "1", "--sd-scripts-dir", "{sd}", "--", "missing.py"], "not found"),
        (["--events-fd", "987", "--sd-scripts-dir", "{sd}", "--", "fake_train.py"], "is not open"),
        (["--sd-scripts-dir", "{sd}", "--", "fake_train.py"], "--events-fd"),
    ],
)
def test_bad_launcher_command_lines_exit_2(
    argv: list[str], message: str, sd_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        launcher.parse_launch_args([arg.format(sd=sd_dir) for arg in argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_launcher_command_line_is_split_at_the_double_dash(sd_dir: Path) -> None:
    parsed = launcher.parse_launch_args(
        ["--events-fd", "2", "--sd-scripts-dir", str(sd_dir), "--", "fake_train.py", "--events-fd", "--", "x"]
    )
    assert parsed == launcher.LaunchArgs(2, sd_dir, sd_dir / "fake_train.py", ["--events-fd", "--", "x"])


def test_a_failing_observer_never_breaks_the_hooked_call(caplog: pytest.LogCaptureFixture) -> None:
    class Saver:
        def save_state(self, output_dir: str) -> str:
            return output_dir

    def explode(*_args: Any) -> None:
        raise RuntimeError("observer bug")

    launcher.wrap_after(Saver, "save_state", explode)
    with caplog.at_level(logging.WARNING, logger="atelier.launcher"):
        assert Saver().save_state("run/state") == "run/state"
    assert "explode failed" in caplog.text


def test_hooks_apply_to_modules_imported_before_and_after_install(tmp_path: Path) -> None:
    (tmp_path / "atelier_fake_later.py").write_text("VALUE = 1\n", encoding="utf-8")
    earlier = types.ModuleType("atelier_fake_earlier")
    seen: list[str] = []
    hooks: dict[str, launcher.Hook] = {
        "atelier_fake_earlier": lambda module, _obs: seen.append(module.__name__),
        "atelier_fake_later": lambda module, _obs: seen.append(f"{module.__name__}={module.VALUE}"),
    }
    observer = launcher.TrainingObserver(launcher.EventWriter(-1), script="x.py")
    sys.modules["atelier_fake_earlier"] = earlier
    sys.path.insert(0, str(tmp_path))
    try:
        launcher.install_hooks(observer, hooks)
        assert seen == ["atelier_fake_earlier"]
        __import__("atelier_fake_later")
        assert seen == ["atelier_fake_earlier", "atelier_fake_later=1"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, launcher._PostImportFinder)]
        for name in ("atelier_fake_earlier", "atelier_fake_later"):
            sys.modules.pop(name, None)


def test_writer_goes_quiet_after_a_failed_write() -> None:
    read_end, write_end = os.pipe()
    writer = launcher.EventWriter(write_end)
    try:
        writer.write("run_finished", ok=True)
        assert decode_record(os.read(read_end, 4096))["ok"] is True
        os.close(read_end)
        writer.write("run_finished", ok=True)  # EPIPE: swallowed
        assert writer.muted
    finally:
        os.close(write_end)
