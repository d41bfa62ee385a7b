"""Run an sd-scripts training script in-process and report its progress as JSON lines.

    <sd_python> trainer/launcher.py --events-fd N --sd-scripts-dir DIR -- train_network.py <args...>

The script runs as ``__main__`` (``runpy``) with ``sys.argv``, ``sys.path[0]`` and the working directory
set as if started directly; its output, exit status and signal behaviour stay its own (no signal
handler here; an exception escaping it is reported, then re-raised). Records (``trainer/protocol.py``,
loaded by file path: our package is not installed in sd-scripts' Python) go to the inherited fd, one
``os.write`` per line; once the reader is gone the launcher goes quiet and training goes on.

Hook points: sd-scripts' files are never touched; the library modules it imports are patched right
after they first load (a post-import hook on ``sys.meta_path``), so its import order is unchanged.
Each hook watches a call that ``NetworkTrainer.train`` (train_network.py, sdxl_train_network.py, ...)
makes at one well-defined moment:

- ``tqdm.std.tqdm``: the bar with ``desc="steps"`` is made just before the loop with total
  ``max_train_steps - initial_step`` and advanced right where sd-scripts does ``global_step += 1``:
  creation -> ``run_started``, updates count the global step (starting at ``initial_step``).
- ``library.train_util.prepare_accelerator(args)``: the final args (``max_train_steps``, ``output_dir``).
- ``library.train_util.LossRecorder.add``: gets the step's loss after the step's saves; its
  ``moving_average`` is sd-scripts' ``avr_loss``. The first ``add`` after a bar update -> ``step``, so
  the artifacts of step N precede the step N record, as in sd-scripts' own logging.
- ``accelerate.Accelerator``: ``prepare`` yields the optimizer (lr), the train dataloader (epoch count)
  and the network, whose ``save_weights`` is wrapped on the instance (-> ``checkpoint_saved``, or
  ``model_saved`` after ``end_training`` or under sd-scripts' last-model name); ``save_state`` ->
  ``state_saved``; ``backward`` keeps the last loss.
- ``library.train_util.sample_image_inference`` + ``PIL.Image.Image.save``: an image saved while a
  prompt is sampled -> ``sample_saved`` with that prompt and step.

Fallbacks: with no ``LossRecorder`` a step is reported at its bar update (loss from ``backward``, no
average); with no sampling hook an image saved in ``<output_dir>/sample`` is a sample with an empty
prompt; with no args the bar's total is the step count. A failing hook is logged, never fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import logging
import math
import os
import runpy
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger("atelier.launcher")

STEPS_BAR_DESC = "steps"
_HELD_UNTIL_START = frozenset({"checkpoint_saved", "state_saved", "sample_saved", "model_saved", "step"})


def _load_protocol() -> ModuleType:
    """Load ``protocol.py`` beside this file without importing our package (absent in sd-scripts' venv)."""
    spec = importlib.util.spec_from_file_location("_atelier_protocol", Path(__file__).with_name("protocol.py"))
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with this one
        raise ImportError("trainer/protocol.py must sit beside the launcher")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_encode_record: Callable[..., bytes] = _load_protocol().encode_record


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
            _wrap_after(network, "save_weights", lambda _r, a, k: self.weights_saved(_arg(a, k, 0, "file")))

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


def _guarded(callback: Callable[..., None], *args: Any) -> None:
    """Run observer code; a bug in it must never break training."""
    try:
        callback(*args)
    except Exception:
        logger.warning("atelier launcher: hook %s failed; training goes on", callback.__name__, exc_info=True)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _wrap_after(owner: Any, name: str, after: Callable[[Any, tuple[Any, ...], dict[str, Any]], None]) -> None:
    """Replace ``owner.name`` by a wrapper that calls ``after(result, args, kwargs)`` once it returned."""
    original = getattr(owner, name, None)
    if not callable(original):
        logger.warning("atelier launcher: %r has no %s; that hook is off", owner, name)
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        _guarded(after, result, args, kwargs)
        return result

    setattr(owner, name, wrapper)


def _hook_tqdm(module: ModuleType, obs: TrainingObserver) -> None:
    _wrap_after(module.tqdm, "__init__", lambda _r, a, _k: obs.bar_created(a[0]))
    _wrap_after(module.tqdm, "update", lambda _r, a, k: obs.bar_advanced(a[0], _arg(a, k, 1, "n")))


def _hook_accelerate(module: ModuleType, obs: TrainingObserver) -> None:
    def prepared(result: Any, args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
        obs.objects_prepared(args[1:], result if isinstance(result, tuple | list) else (result,))

    def state_saved(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        obs.state_saved(result if isinstance(result, str) else _arg(args, kwargs, 1, "output_dir"))

    cls = module.Accelerator
    _wrap_after(cls, "prepare", prepared)
    _wrap_after(cls, "save_state", state_saved)
    _wrap_after(cls, "end_training", lambda _r, _a, _k: obs.training_ended())
    _wrap_after(cls, "backward", lambda _r, a, k: obs.backward_called(_arg(a, k, 1, "loss")))


def _hook_train_util(module: ModuleType, obs: TrainingObserver) -> None:
    obs.train_util = module
    _wrap_after(module, "prepare_accelerator", lambda r, a, k: obs.accelerator_ready(_arg(a, k, 0, "args"), r))
    if hasattr(module, "LossRecorder"):
        obs.loss_hooked = True
        _wrap_after(module.LossRecorder, "add", lambda _r, a, k: obs.loss_recorded(a[0], k.get("epoch"), k.get("loss")))
    original = getattr(module, "sample_image_inference", None)
    if not callable(original):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def sample_image_inference(*args: Any, **kwargs: Any) -> Any:
        step, prompt = None, ""
        with contextlib.suppress(TypeError, AttributeError):
            bound = signature.bind_partial(*args, **kwargs).arguments
            step, prompt = bound.get("steps"), (bound.get("prompt_dict") or {}).get("prompt", "")
        with obs.sampling(step, prompt):
            return original(*args, **kwargs)

    module.sample_image_inference = sample_image_inference  # type: ignore[attr-defined]


def _hook_pil(module: ModuleType, obs: TrainingObserver) -> None:
    _wrap_after(module.Image, "save", lambda _r, a, k: obs.image_saved(_arg(a, k, 1, "fp")))


Hook = Callable[[ModuleType, "TrainingObserver"], None]
HOOKS: dict[str, Hook] = {
    "tqdm.std": _hook_tqdm,
    "accelerate.accelerator": _hook_accelerate,
    "library.train_util": _hook_train_util,
    "PIL.Image": _hook_pil,
}


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` entry that applies a hook right after a named module has executed."""

    def __init__(self, hooks: dict[str, Hook], observer: TrainingObserver) -> None:
        self.hooks = hooks
        self.observer = observer

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        """Find the module with the other finders; make its (per-file) loader hook it after exec."""
        if fullname not in self.hooks:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if not isinstance(loader, importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader):
            return spec
        exec_original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            exec_original(module)
            hook = self.hooks.pop(fullname, None)
            if hook is not None:
                _guarded(hook, module, self.observer)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_hooks(observer: TrainingObserver, hooks: dict[str, Hook] | None = None) -> None:
    """Apply ``hooks`` (default ``HOOKS``) to modules already imported, and to the others once imported."""
    pending = dict(HOOKS if hooks is None else hooks)
    for name in [name for name in pending if name in sys.modules]:
        _guarded(pending.pop(name), sys.modules[name], observer)
    sys.meta_path.insert(0, _PostImportFinder(pending, observer))


@dataclass(frozen=True)
class LaunchArgs:
    """What the launcher was asked to run."""

    events_fd: int
    sd_scripts_dir: Path
    script: Path
    script_args: list[str]


def parse_launch_args(argv: Sequence[str]) -> LaunchArgs:
    """Parse ``--events-fd N --sd-scripts-dir DIR -- SCRIPT [ARGS...]``; exit 2 on a bad command line."""
    parser = argparse.ArgumentParser(
        prog="launcher.py", usage="%(prog)s --events-fd N --sd-scripts-dir DIR -- SCRIPT [ARGS...]"
    )
    parser.add_argument("--events-fd", type=int, required=True, help="inherited fd for JSON-lines records")
    parser.add_argument("--sd-scripts-dir", type=Path, required=True, help="the sd-scripts checkout")
    argv = list(argv)
    if "--" not in argv:
        parser.error("missing '--' before the training script")
    split = argv.index("--")
    options = parser.parse_args(argv[:split])
    script_and_args = argv[split + 1 :]
    if not script_and_args:
        parser.error("no training script after '--'")
    sd_dir = options.sd_scripts_dir.resolve()
    if not sd_dir.is_dir():
        parser.error(f"--sd-scripts-dir {sd_dir} is not a directory")
    script = sd_dir / script_and_args[0]
    if not script.is_file():
        parser.error(f"training script {script} not found")
    try:
        os.fstat(options.events_fd)
    except OSError as exc:
        parser.error(f"--events-fd {options.events_fd} is not open: {exc.strerror}")
    return LaunchArgs(options.events_fd, sd_dir, script, script_and_args[1:])


def run(launch: LaunchArgs) -> None:
    """Run the training script as ``__main__`` with the hooks installed; report how it ended."""
    os.set_inheritable(launch.events_fd, False)
    observer = TrainingObserver(EventWriter(launch.events_fd), script=launch.script.name)
    install_hooks(observer)
    os.chdir(launch.sd_scripts_dir)
    sys.path[0] = str(launch.sd_scripts_dir)
    sys.argv = [str(launch.script), *launch.script_args]
    try:
        runpy.run_path(str(launch.script), run_name="__main__")
    except BaseException as exc:
        _guarded(observer.finished, exc)  # never let reporting replace the script's own exception
        raise
    _guarded(observer.finished, None)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: the exit status is the training script's own."""
    run(parse_launch_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
