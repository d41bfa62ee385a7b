"""The failure classifier, fed with sd-scripts' real output (tests/fixtures/sd_scripts)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from trainer.failures import Failure, FailureClass, RunEvidence, classify

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sd_scripts"


def recorded(
    case: str,
    returncode: int,
    *,
    model_exists: bool = False,
    cancelled: bool = False,
    timed_out: bool = False,
    sent_sigkill: bool = False,
) -> RunEvidence:
    """Evidence from a recording; the supervisor splits output on CR and LF the same way."""
    folder = FIXTURES / case

    def lines(name: str) -> list[str]:
        path = folder / name
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return [line for line in text.replace("\r", "\n").split("\n") if line.strip()]

    return RunEvidence(
        returncode=returncode,
        model_exists=model_exists,
        stdout_tail=lines("stdout.txt")[-200:],
        stderr_tail=lines("stderr.txt")[-200:],
        cancelled=cancelled,
        timed_out=timed_out,
        sent_sigkill=sent_sigkill,
    )


def recorded_rc(case: str) -> int:
    summary = (FIXTURES / "bad_summary.txt").read_text()
    for line in summary.splitlines():
        name, _, rest = line.partition(" rc=")
        if name == case.removeprefix("bad_"):
            return int(rest.split()[0])
    return int((FIXTURES / case / "rc.txt").read_text().strip().removeprefix("rc="))


def must_fail(evidence: RunEvidence) -> Failure:
    failure = classify(evidence)
    assert failure is not None
    return failure


@pytest.mark.parametrize(
    ("case", "expected", "evidence_part"),
    [
        ("bad_unknown_arg", FailureClass.BAD_ARGUMENTS, "unrecognized arguments: --bogus_flag 1"),
        ("bad_missing_model", FailureClass.MISSING_MODEL, "neither a valid local path"),
        ("bad_no_tokenizer", FailureClass.MISSING_MODEL, "_load_tokenizer"),
        ("bad_corrupt_image", FailureClass.BAD_DATASET, "ZeroDivisionError"),
        ("bad_empty_dir", FailureClass.BAD_DATASET, "No data found"),
    ],
)
def test_recorded_bad_inputs(case: str, expected: FailureClass, evidence_part: str) -> None:
    failure = must_fail(recorded(case, recorded_rc(case)))
    assert failure.failure_class is expected
    assert evidence_part in failure.evidence
    assert failure.retryable is False


def test_the_recorded_exit_codes_are_what_the_rules_assume() -> None:
    codes = {case: recorded_rc(case) for case in ["bad_unknown_arg", "bad_missing_model", "bad_empty_dir"]}
    assert codes == {"bad_unknown_arg": 2, "bad_missing_model": 1, "bad_empty_dir": 0}
    assert recorded_rc("sig_int_py") == -signal.SIGINT
    assert recorded_rc("sig_term_py") == -signal.SIGTERM


def test_successful_run_is_no_failure() -> None:
    assert classify(recorded("r1", 0, model_exists=True)) is None


def test_exit_zero_without_the_lora_is_a_failure() -> None:
    failure = must_fail(recorded("r1", 0, model_exists=False))
    assert failure.failure_class is FailureClass.NO_OUTPUT


def test_interrupt_we_sent_is_cancelled() -> None:
    failure = must_fail(recorded("sig_int_py", -signal.SIGINT, cancelled=True))
    assert failure.failure_class is FailureClass.CANCELLED
    assert failure.to_dict() == {"class": "cancelled", "message": "cancelled on request", "retryable": False}


def test_interrupt_we_did_not_send_is_a_crash_naming_the_exception() -> None:
    failure = must_fail(recorded("sig_int_py", -signal.SIGINT))
    assert failure.failure_class is FailureClass.CRASHED
    assert "SIGINT" in failure.message
    assert "KeyboardInterrupt" in failure.message
    assert failure.retryable


def test_term_we_did_not_send_is_a_crash() -> None:
    failure = must_fail(recorded("sig_term_accel_group", -signal.SIGTERM))
    assert failure.failure_class is FailureClass.CRASHED
    assert "SIGTERM" in failure.message


def test_timeout_wins_over_everything() -> None:
    failure = must_fail(recorded("bad_corrupt_image", -signal.SIGKILL, timed_out=True, sent_sigkill=True))
    assert failure.failure_class is FailureClass.TIMED_OUT


@pytest.mark.parametrize(
    "line",
    [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 8 GiB",
        "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)",
    ],
)
def test_out_of_memory_messages(line: str) -> None:
    failure = must_fail(RunEvidence(returncode=1, model_exists=False, stderr_tail=["Traceback ...", line]))
    assert failure.failure_class is FailureClass.OUT_OF_MEMORY
    assert failure.retryable


def test_sigkill_we_did_not_send_is_the_oom_killer() -> None:
    failure = must_fail(RunEvidence(returncode=-signal.SIGKILL, model_exists=False, stderr_tail=["steps: 10%"]))
    assert failure.failure_class is FailureClass.OUT_OF_MEMORY


def test_sigkill_we_sent_while_cancelling_is_cancelled() -> None:
    evidence = RunEvidence(returncode=-signal.SIGKILL, model_exists=False, cancelled=True, sent_sigkill=True)
    assert must_fail(evidence).failure_class is FailureClass.CANCELLED


def test_error_record_is_evidence_too() -> None:
    record = {"exc_type": "ZeroDivisionError", "message": "division by zero"}
    failure = must_fail(RunEvidence(returncode=1, model_exists=False, error_record=record))
    assert failure.failure_class is FailureClass.BAD_DATASET


def test_unknown_crash() -> None:
    evidence = RunEvidence(returncode=1, model_exists=False, stderr_tail=["Traceback", "ValueError: something odd"])
    failure = must_fail(evidence)
    assert failure.failure_class is FailureClass.CRASHED
    assert failure.message.endswith("ValueError: something odd")
