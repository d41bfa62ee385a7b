"""The supervisor against the stand-in trainer: events, ETA, cancel, timeout, failures, groups, resume."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors import safe_open

from tests.unit.trainer.standin import standin_options, standin_spec
from trainer.config import build_argv
from trainer.failures import FailureClass
from trainer.supervisor import LaunchError, SupervisorOptions, TrainingProcess, run_training
from trainer.supervisor_events import (
    CheckpointSaved,
    ModelSaved,
    Outcome,
    OutcomeStatus,
    Progress,
    SampleSaved,
    StateSaved,
    SupervisorEvent,
)
from trainer.supervisor_process import become_subreaper, find_orphan, terminate_orphan_group
from trainer.supervisor_resume import find_latest_state, resume_spec


@pytest.fixture(scope="module", autouse=True)
def adopt_orphans() -> Iterator[None]:
    """Adopt killed group members so they can be reaped (PID 1 here does not reap)."""
    become_subreaper(True)
    yield
    become_subreaper(False)


def assert_group_gone(pgid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


async def all_events(process: TrainingProcess) -> list[SupervisorEvent]:
    return [event async for event in process.events()]


async def test_successful_run_reports_everything(tmp_path: Path) -> None:
    prompts = [{"prompt": "zxq person, portrait", "seed": 5}]
    spec = standin_spec(tmp_path, steps=6, save_every_n_steps=3, sample_prompts=prompts, network_dim=8)
    seen: list[SupervisorEvent] = []
    process = TrainingProcess(spec, standin_options(), on_event=seen.append)
    started = await process.start()
    events = await all_events(process)
    assert events == seen
    assert events[0] == started
    assert started.pgid == started.pid == process.pgid
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome
    assert outcome.failure is None
    assert outcome.returncode == 0
    assert outcome.group_clean
    assert outcome.model_path == spec.layout.final_model
    assert [e.step for e in events if isinstance(e, Progress)] == [0, 1, 2, 3, 4, 5, 6]
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [3, 6]
    assert [e.path.name for e in events if isinstance(e, StateSaved)] == [
        "zxq_v1-step00000003-state",
        "zxq_v1-step00000006-state",
        "zxq_v1-state",
    ]
    assert isinstance(events[-2], ModelSaved)  # after the last state, as sd-scripts does
    samples = [e for e in events if isinstance(e, SampleSaved)]
    assert [(s.step, s.prompt) for s in samples] == [(3, "zxq person, portrait"), (6, "zxq person, portrait")]
    assert all(s.path.is_file() for s in samples)
    assert [e.path for e in events if isinstance(e, ModelSaved)] == [spec.layout.final_model]
    last = [e for e in events if isinstance(e, Progress)][-1]
    assert (last.percent, last.total, last.epoch) == (100.0, 6, 3)  # 2 images x 2 repeats / batch 2
    assert last.loss is not None
    assert last.avg_loss is not None
    assert last.lr is not None
    with safe_open(str(outcome.model_path), "np") as lora:
        assert lora.metadata()["ss_network_dim"] == "8"
        assert any(key.endswith(".lora_down.weight") for key in lora.keys())  # noqa: SIM118
    log = spec.layout.log_file.read_text()
    assert "running training" in log
    assert any(line.startswith("steps:") for line in outcome.stderr_tail)
    assert_group_gone(started.pgid)


async def test_progress_has_rate_and_eta(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=8)
    process = TrainingProcess(spec, standin_options(FAKE_SD_STEP_DELAY=0.05))
    await process.start()
    progress = [e for e in await all_events(process) if isinstance(e, Progress)]
    timed = [p for p in progress if p.it_per_s is not None]
    assert len(timed) == 7  # steps 2..8: the first step only sets the baseline
    assert all(0 < p.it_per_s < 25 for p in timed if p.it_per_s is not None)
    etas = [p.eta_s for p in timed]
    assert etas[-1] == 0
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(etas))


async def first_step(process: TrainingProcess) -> tuple[Progress, list[SupervisorEvent]]:
    events: list[SupervisorEvent] = []
    async for event in process.events():
        events.append(event)
        if isinstance(event, Progress) and event.step >= 1:
            return event, events
    raise AssertionError(f"the run ended before its first step: {events[-1]}")


async def cancel_after_first_step(process: TrainingProcess) -> tuple[Outcome, float]:
    await process.start()
    await first_step(process)
    began = time.monotonic()
    await process.cancel()
    outcome = await process.wait()
    return outcome, time.monotonic() - began


async def test_cancel_stops_the_whole_group(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=1000)
    process = TrainingProcess(spec, standin_options(FAKE_SD_STEP_DELAY=0.2, FAKE_SD_FORK_CHILD=1))
    outcome, elapsed = await cancel_after_first_step(process)
    assert elapsed < 10
    assert outcome.status is OutcomeStatus.CANCELLED
    assert outcome.failure is not None
    assert outcome.failure.failure_class is FailureClass.CANCELLED
    assert outcome.signals_sent == ("SIGINT",)
    assert outcome.returncode == -signal.SIGINT
    assert "KeyboardInterrupt" in outcome.stderr_tail
    assert outcome.group_clean
    assert_group_gone(process.pgid)


async def test_cancel_escalates_to_sigterm(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=1000)
    options = standin_options(FAKE_SD_STEP_DELAY=0.1, FAKE_SD_IGNORE_SIGINT=1, sigint_grace_s=0.5)
    outcome, elapsed = await cancel_after_first_step(TrainingProcess(spec, options))
    assert outcome.signals_sent == ("SIGINT", "SIGTERM")
    assert outcome.returncode == -signal.SIGTERM
    assert outcome.status is OutcomeStatus.CANCELLED
    assert elapsed < 10


async def test_cancel_escalates_to_sigkill(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=1000)
    options = standin_options(
        FAKE_SD_STEP_DELAY=0.1,
        FAKE_SD_IGNORE_SIGINT=1,
        FAKE_SD_IGNORE_SIGTERM=1,
        FAKE_SD_FORK_CHILD=1,
        sigint_grace_s=0.3,
        sigterm_grace_s=0.3,
    )
    process = TrainingProcess(spec, options)
    outcome, elapsed = await cancel_after_first_step(process)
    assert outcome.signals_sent == ("SIGINT", "SIGTERM", "SIGKILL")
    assert outcome.returncode == -signal.SIGKILL
    assert outcome.failure is not None
    assert outcome.failure.failure_class is FailureClass.CANCELLED  # not mistaken for the OOM killer
    assert elapsed < 10
    assert_group_gone(process.pgid)


async def test_wall_clock_limit(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=1000)
    options = standin_options(FAKE_SD_STEP_DELAY=0.1, wall_clock_limit_s=1.0)
    outcome = await run_training(spec, options)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failure is not None
    assert outcome.failure.failure_class is FailureClass.TIMED_OUT
    assert not outcome.failure.retryable
    assert outcome.signals_sent == ("SIGINT",)
    assert 0 < outcome.last_step < 1000


@pytest.mark.parametrize(
    ("fail", "expected"),
    [
        ("unknown_arg", FailureClass.BAD_ARGUMENTS),
        ("missing_model", FailureClass.MISSING_MODEL),
        ("no_tokenizer", FailureClass.MISSING_MODEL),
        ("corrupt_image", FailureClass.BAD_DATASET),
        ("empty_dataset", FailureClass.BAD_DATASET),
        ("cuda_oom", FailureClass.OUT_OF_MEMORY),
        ("cpu_oom", FailureClass.OUT_OF_MEMORY),
        ("oom_kill", FailureClass.OUT_OF_MEMORY),
        ("crash", FailureClass.CRASHED),
    ],
)
async def test_failure_classes(tmp_path: Path, fail: str, expected: FailureClass) -> None:
    spec = standin_spec(tmp_path, steps=4)
    outcome = await run_training(spec, standin_options(FAKE_SD_FAIL=fail, FAKE_SD_FAIL_AT_STEP=2))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failure is not None
    assert outcome.failure.failure_class is expected, outcome.failure
    assert outcome.model_path is None
    assert outcome.signals_sent == ()


async def test_exit_zero_without_lora_is_a_failure(tmp_path: Path) -> None:
    outcome = await run_training(standin_spec(tmp_path), standin_options(FAKE_SD_NO_OUTPUT=1))
    assert outcome.returncode == 0
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failure is not None
    assert outcome.failure.failure_class is FailureClass.NO_OUTPUT


async def test_really_empty_dataset_and_really_missing_model(tmp_path: Path) -> None:
    empty = await run_training(standin_spec(tmp_path / "a", images=0), standin_options())
    assert empty.returncode == 0
    assert empty.failure is not None
    assert empty.failure.failure_class is FailureClass.BAD_DATASET
    missing = await run_training(standin_spec(tmp_path / "b", make_model=False), standin_options())
    assert missing.failure is not None
    assert missing.failure.failure_class is FailureClass.MISSING_MODEL


async def test_resume_from_the_latest_state(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=6, save_every_n_steps=2)
    crashed = await run_training(spec, standin_options(FAKE_SD_FAIL="crash", FAKE_SD_FAIL_AT_STEP=5))
    assert crashed.failure is not None
    assert crashed.failure.failure_class is FailureClass.CRASHED
    state = find_latest_state(spec.layout.output_dir, spec.layout.output_name)
    assert state is not None
    assert (state.path.name, state.step) == ("zxq_v1-step00000004-state", 4)
    resumed = resume_spec(spec, state)
    assert build_argv(resumed, 9)[-3:] == ["--resume", str(state.path), "--skip_until_initial_step"]
    process = TrainingProcess(resumed, standin_options())
    await process.start()
    events = await all_events(process)
    steps = [e.step for e in events if isinstance(e, Progress)]
    assert steps == [4, 5, 6]
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert outcome.status is OutcomeStatus.SUCCEEDED


async def test_async_callback_errors_do_not_stop_supervision(tmp_path: Path) -> None:
    received: list[str] = []

    async def callback(event: SupervisorEvent) -> None:
        received.append(type(event).__name__)
        if isinstance(event, Progress):
            raise RuntimeError("a broken subscriber")

    outcome = await run_training(standin_spec(tmp_path), standin_options(), on_event=callback)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert received[0] == "Started"
    assert received[-1] == "Outcome"
    assert received.count("Progress") == 7


async def test_launch_error(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path)
    broken = spec.__class__(
        install=spec.install.__class__(python=tmp_path / "no-python", scripts_dir=spec.install.scripts_dir),
        script=spec.script,
        layout=spec.layout,
    )
    with pytest.raises(LaunchError, match="no-python"):
        await TrainingProcess(broken, SupervisorOptions()).start()


def test_find_and_terminate_an_orphaned_group(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path, steps=100_000)
    read_end, write_end = os.pipe()
    env = {**os.environ, "FAKE_SD_STEP_DELAY": "0.05", "FAKE_SD_FORK_CHILD": "1", "FAKE_SD_IGNORE_SIGINT": "1"}
    leader = subprocess.Popen(
        build_argv(spec, write_end),
        pass_fds=(write_end,),
        start_new_session=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as records:
            assert b"run_started" in records.readline()  # the group is up and training
            assert find_orphan(leader.pid, spec.cmdline_marker)
            assert not find_orphan(leader.pid, "some other run")
            gone = terminate_orphan_group(leader.pid, spec.cmdline_marker, sigint_grace_s=0.3, sigterm_grace_s=5)
        assert gone
        assert leader.wait(timeout=5) == -signal.SIGTERM
        assert_group_gone(leader.pid)
        assert not find_orphan(leader.pid, spec.cmdline_marker)
    finally:
        if leader.poll() is None:
            os.killpg(leader.pid, signal.SIGKILL)
            leader.wait()


def _signal_state(pid: int) -> tuple[int, int]:
    """(ignored, blocked) signal bit masks of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["SigIgn"], 16), int(fields["SigBlk"], 16)


def _bit(sig: signal.Signals) -> int:
    return 1 << (sig - 1)


async def test_the_run_starts_with_default_signals_whatever_ours_are(tmp_path: Path) -> None:
    """Issue 8, item 7: we ignore SIGINT and SIGQUIT (a background job of a non-interactive shell) and block
    SIGTERM; the run gets none of that, so a cancel's SIGINT still raises KeyboardInterrupt in it."""
    spec = standin_spec(tmp_path, steps=1000)
    process = TrainingProcess(spec, standin_options(FAKE_SD_STEP_DELAY=0.2, sigint_grace_s=60))
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        await process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ignored, masked = _signal_state(process.pid)
    assert not ignored & (_bit(signal.SIGINT) | _bit(signal.SIGQUIT))
    assert masked == 0
    await first_step(process)
    await process.cancel()
    outcome = await process.wait()
    assert outcome.signals_sent == ("SIGINT",)  # SIGTERM would have come only after 60 s
    assert outcome.returncode == -signal.SIGINT
    assert outcome.status is OutcomeStatus.CANCELLED
    assert_group_gone(process.pgid)
