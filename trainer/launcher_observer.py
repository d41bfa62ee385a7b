"""The launcher's observer: turns hooked sd-scripts calls into progress records (see ``launcher.py``).

Loaded by the launcher from the file beside it, inside sd-scripts' own Python: standard library only,
plus ``protocol.py`` loaded the same way.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger("atelier.launcher")


def _load_protocol() -> ModuleType:
    """Load ``protocol.py`` beside this file without importing our package (absent in sd-scripts' venv)."""
    spec = importlib.util.spec_from_file_location("_atelier_protocol", Path(__file__).with_name("protocol.py"))
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with this one
        raise ImportError("trainer/protocol.py must sit beside the launcher")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_encode_record: Callable[..., bytes] = _load_protocol().encode_record


STEPS_BAR_DESC = "steps"
_HELD_UNTIL_START = frozenset({"checkpoint_saved", "state_saved", "sample_saved", "model_saved", "step"})


class EventWriter:
    """Writes protocol records to a file descriptor; goes quiet for good once writing fails."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pid = os.getpid()
        self.muted = False

    def write(self, record_type: str, **fields: Any) -> None:
        """Encode and write one record (whole line, unbuffered); never raises on a closed reader."""
        if self.muted or os.getpid() != self._pid:  # forked dataloader workers stay silent
            return
        view = memoryview(_encode_record(record_type, **fields))
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:  # EPIPE (reader gone), EBADF: stop reporting, keep training
            self.muted = True


def _as_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


class TrainingObserver:
    """Turns the hooked calls into protocol records, keeping the global step as sd-scripts counts it."""

    def __init__(self, writer: EventWriter, script: str) -> None:
        self._writer = writer
        self._script = script
        self.args: Any = None
        self.train_util: ModuleType | None = None
        self.loss_hooked = False  # LossRecorder.add is hooked: steps wait for its loss
        self._optimizer: Any = None
        self._loader_len: int | None = None
        self._bar: Any = None
        self._total_steps: int | None = None
        self._step = 0
        self._reported_step = 0
        self._last_loss: Any = None
        self._sample: tuple[int, str] | None = None
        self._ended = False
        self._started = False
        self._held: list[tuple[str, dict[str, Any]]] = []

    def emit(self, record_type: str, **fields: Any) -> None:
        """Write a record; artifacts and steps wait until ``run_started`` has been written."""
        if not self._started and record_type in _HELD_UNTIL_START:
            self._held.append((record_type, fields))
        else:
            self._writer.write(record_type, **fields)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for record_type, fields in held:
            self._writer.write(record_type, **fields)

    def accelerator_ready(self, args: Any, accelerator: Any) -> None:
        """sd-scripts prepared its accelerator: keep its args; only the main process reports."""
        self.args = args
        if getattr(accelerator, "is_main_process", True) is False:
            self._writer.muted = True

    def objects_prepared(self, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        """``Accelerator.prepare``: find the optimizer, the train dataloader and the network."""
        for obj in inputs:
            if self._optimizer is None and isinstance(getattr(obj, "param_groups", None), list):
                self._optimizer = obj
            elif callable(getattr(obj, "save_weights", None)):
                self._watch_network(obj)
        for obj in outputs:
            if self._loader_len is None and hasattr(obj, "dataset") and hasattr(obj, "__len__"):
                with contextlib.suppress(TypeError):
                    self._loader_len = len(obj)

    def _watch_network(self, network: Any) -> None:
        if "save_weights" not in vars(network):  # not wrapped yet (the method lives on the class)
            wrap_after(network, "save_weights", lambda _r, a, k: self.weights_saved(call_arg(a, k, 0, "file")))

    def bar_created(self, bar: Any) -> None:
        """A tqdm bar was made; the one named "steps" starts the run."""
        if self._bar is not None or getattr(bar, "desc", None) != STEPS_BAR_DESC:
            return
        self._bar = bar
        bar_total = bar.total if isinstance(bar.total, int) else None
        max_steps = getattr(self.args, "max_train_steps", None)
        self._total_steps = max_steps if isinstance(max_steps, int) else bar_total
        if self._total_steps is not None and bar_total is not None:
            self._step = self._reported_step = max(0, self._total_steps - bar_total)
        self._started = True
        self.emit(
            "run_started",
            script=self._script,
            total_steps=self._total_steps,
            num_epochs=self._num_epochs(),
            resume_step=self._step,
            pid=os.getpid(),
        )
        self._release_held()

    def _steps_per_epoch(self) -> int | None:
        accumulation = getattr(self.args, "gradient_accumulation_steps", 1) or 1
        return math.ceil(self._loader_len / accumulation) if self._loader_len else None

    def _num_epochs(self) -> int | None:
        per_epoch = self._steps_per_epoch()
        return math.ceil(self._total_steps / per_epoch) if per_epoch and self._total_steps else None

    def bar_advanced(self, bar: Any, n: Any) -> None:
        """The steps bar moved: one more optimizer step, reported now unless its loss is to come."""
        if bar is self._bar:
            self._report_pending_step()  # never got its LossRecorder.add
            self._step += int(n) if n else 1
            if not self.loss_hooked:
                self._report_pending_step()

    def loss_recorded(self, recorder: Any, epoch: Any, loss: Any) -> None:
        """``LossRecorder.add``: the loss of the step just counted, if one is waiting."""
        if self._step > self._reported_step:
            epoch_no = epoch + 1 if isinstance(epoch, int) else None
            self._report_step(loss, getattr(recorder, "moving_average", None), epoch_no)

    def backward_called(self, loss: Any) -> None:
        """Keep the last loss tensor given to ``Accelerator.backward`` (read only as a fallback)."""
        self._last_loss = loss

    def _report_pending_step(self) -> None:
        if self._step > self._reported_step:
            per_epoch = self._steps_per_epoch()
            epoch = (self._step - 1) // per_epoch + 1 if per_epoch else None
            self._report_step(self._last_loss, None, epoch)

    def _report_step(self, loss: Any, avg_loss: Any, epoch: int | None) -> None:
        groups = getattr(self._optimizer, "param_groups", None)
        lr = _as_float(groups[0].get("lr")) if groups else None
        self.emit(
            "step",
            step=self._step,
            total_steps=self._total_steps,
            epoch=epoch,
            loss=_as_float(loss),
            avg_loss=_as_float(avg_loss),
            lr=lr,
        )
        self._reported_step = self._step

    def training_ended(self) -> None:
        """``Accelerator.end_training``: what is saved from now on is the final model."""
        self._report_pending_step()
        self._ended = True

    def weights_saved(self, file: Any) -> None:
        """The network wrote a LoRA file: an intermediate checkpoint or the final model."""
        path = os.path.abspath(os.fspath(file))
        if self._ended or self._is_last_name(path):
            self.emit("model_saved", path=path)
        else:
            self.emit("checkpoint_saved", step=self._step, path=path)

    def _is_last_name(self, path: str) -> bool:
        name_of_last = getattr(self.train_util, "get_last_ckpt_name", None)
        if name_of_last is None or self.args is None:
            return False
        return bool(os.path.basename(path) == name_of_last(self.args, os.path.splitext(path)[1]))

    def state_saved(self, location: Any) -> None:
        """``Accelerator.save_state`` wrote a resumable state folder."""
        if location is not None:
            self.emit("state_saved", step=self._step, path=os.path.abspath(os.fspath(location)))

    @contextlib.contextmanager
    def sampling(self, step: Any, prompt: Any) -> Iterator[None]:
        """Images saved inside this block are samples of ``prompt`` at ``step``."""
        self._sample = (step if isinstance(step, int) else self._step, prompt if isinstance(prompt, str) else "")
        try:
            yield
        finally:
            self._sample = None

    def image_saved(self, target: Any) -> None:
        """PIL saved an image: a sample when inside ``sampling`` or under ``<output_dir>/sample``."""
        if not isinstance(target, str | os.PathLike):
            return
        path = os.path.abspath(os.fspath(target))
        if self._sample is not None:
            self.emit("sample_saved", step=self._sample[0], path=path, prompt=self._sample[1])
            return
        output_dir = getattr(self.args, "output_dir", None)
        if output_dir and os.path.dirname(path) == os.path.abspath(os.path.join(output_dir, "sample")):
            self.emit("sample_saved", step=self._step, path=path, prompt="")

    def finished(self, exc: BaseException | None) -> None:
        """The script returned or raised: flush what waits, then ``error`` and ``run_finished``."""
        self._report_pending_step()
        self._started = True
        self._release_held()
        ok = exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0))
        if not ok and exc is not None:
            self.emit("error", exc_type=type(exc).__name__, message=str(exc)[:2000])
        self.emit("run_finished", ok=ok)


def guarded(callback: Callable[..., None], *args: Any) -> None:
    """Run observer code; a bug in it must never break training."""
    try:
        callback(*args)
    except Exception:
        logger.warning("atelier launcher: hook %s failed; training goes on", callback.__name__, exc_info=True)


def call_arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def wrap_after(owner: Any, name: str, after: Callable[[Any, tuple[Any, ...], dict[str, Any]], None]) -> None:
    """Replace ``owner.name`` by a wrapper that calls ``after(result, args, kwargs)`` once it returned."""
    original = getattr(owner, name, None)
    if not callable(original):
        logger.warning("atelier launcher: %r has no %s; that hook is off", owner, name)
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        guarded(after, result, args, kwargs)
        return result

    setattr(owner, name, wrapper)
