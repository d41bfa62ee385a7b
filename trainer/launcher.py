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
import os
import runpy
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

logger = logging.getLogger("atelier.launcher")


def _load_sibling(module_name: str, file_name: str) -> ModuleType:
    """Load a module from the file beside this one, without importing our package (absent in sd-scripts' venv)
    and without putting our folder on sd-scripts' ``sys.path``."""
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name(file_name))
    if spec is None or spec.loader is None:  # pragma: no cover - the files ship together
        raise ImportError(f"trainer/{file_name} must sit beside the launcher")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from trainer.launcher_observer import (
        STEPS_BAR_DESC,
        EventWriter,
        TrainingObserver,
        call_arg,
        guarded,
        wrap_after,
    )
else:  # inside sd-scripts' Python our package is not importable: load the file beside this one
    _observer = _load_sibling("_atelier_launcher_observer", "launcher_observer.py")
    STEPS_BAR_DESC, EventWriter, TrainingObserver = (
        _observer.STEPS_BAR_DESC,
        _observer.EventWriter,
        _observer.TrainingObserver,
    )
    call_arg, guarded, wrap_after = _observer.call_arg, _observer.guarded, _observer.wrap_after


def _hook_tqdm(module: ModuleType, obs: TrainingObserver) -> None:
    wrap_after(module.tqdm, "__init__", lambda _r, a, _k: obs.bar_created(a[0]))
    wrap_after(module.tqdm, "update", lambda _r, a, k: obs.bar_advanced(a[0], call_arg(a, k, 1, "n")))


def _hook_accelerate(module: ModuleType, obs: TrainingObserver) -> None:
    def prepared(result: Any, args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
        obs.objects_prepared(args[1:], result if isinstance(result, tuple | list) else (result,))

    def state_saved(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        obs.state_saved(result if isinstance(result, str) else call_arg(args, kwargs, 1, "output_dir"))

    cls = module.Accelerator
    wrap_after(cls, "prepare", prepared)
    wrap_after(cls, "save_state", state_saved)
    wrap_after(cls, "end_training", lambda _r, _a, _k: obs.training_ended())
    wrap_after(cls, "backward", lambda _r, a, k: obs.backward_called(call_arg(a, k, 1, "loss")))


def _hook_train_util(module: ModuleType, obs: TrainingObserver) -> None:
    obs.train_util = module
    wrap_after(module, "prepare_accelerator", lambda r, a, k: obs.accelerator_ready(call_arg(a, k, 0, "args"), r))
    if hasattr(module, "LossRecorder"):
        obs.loss_hooked = True
        wrap_after(module.LossRecorder, "add", lambda _r, a, k: obs.loss_recorded(a[0], k.get("epoch"), k.get("loss")))
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
    wrap_after(module.Image, "save", lambda _r, a, k: obs.image_saved(call_arg(a, k, 1, "fp")))


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
                guarded(hook, module, self.observer)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_hooks(observer: TrainingObserver, hooks: dict[str, Hook] | None = None) -> None:
    """Apply ``hooks`` (default ``HOOKS``) to modules already imported, and to the others once imported."""
    pending = dict(HOOKS if hooks is None else hooks)
    for name in [name for name in pending if name in sys.modules]:
        guarded(pending.pop(name), sys.modules[name], observer)
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
        guarded(observer.finished, exc)  # never let reporting replace the script's own exception
        raise
    guarded(observer.finished, None)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: the exit status is the training script's own."""
    run(parse_launch_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
