"""A fake sd-scripts checkout for the launcher tests (no tests here): just the calls the launcher hooks.

``write_fake_sd_scripts(root, with_hook_points=...)`` writes stand-ins for ``tqdm``, ``accelerate``,
``PIL.Image`` and ``library.train_util`` plus a ``fake_train.py`` whose loop makes those calls in
the order ``train_network.py`` makes them (bar update, sampling, checkpoint + state, loss record).
The stand-ins shadow any installed package because the launcher puts the checkout first on
``sys.path``, as ``python train_network.py`` would. With ``with_hook_points=False`` the train_util
stand-in lacks ``LossRecorder`` and ``sample_image_inference`` and the script never calls
``end_training``: the launcher's fallbacks must carry the run.
"""

from __future__ import annotations

from pathlib import Path

TQDM = """
class tqdm:
    def __init__(self, iterable=None, desc=None, total=None, disable=False, **kwargs):
        self.desc = desc or ""
        self.total = len(iterable) if total is None and iterable is not None else total
        self.n = 0

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **kwargs):
        pass
"""

ACCELERATOR = """
import os


class Accelerator:
    is_main_process = True

    def prepare(self, *objects):
        return objects if len(objects) > 1 else objects[0]

    def backward(self, loss, **kwargs):
        self.last_loss = loss

    def save_state(self, output_dir=None):
        os.makedirs(output_dir, exist_ok=True)
        return output_dir

    def end_training(self):
        pass
"""

PIL_IMAGE = """
class Image:
    def save(self, fp, format=None, **params):
        with open(fp, "wb") as f:
            f.write(b"png")


def new(mode, size, color=None):
    return Image()
"""

TRAIN_UTIL_CORE = """
import os

from accelerate import Accelerator
from PIL import Image


def prepare_accelerator(args):
    return Accelerator()


def get_last_ckpt_name(args, ext):
    return (args.output_name or "last") + ext
"""

TRAIN_UTIL_HOOK_POINTS = """

class LossRecorder:
    def __init__(self):
        self.loss_list = []
        self.loss_total = 0.0

    def add(self, *, epoch, step, loss):
        self.loss_list.append(loss)
        self.loss_total += loss

    @property
    def moving_average(self):
        return self.loss_total / len(self.loss_list)


def sample_image_inference(
    accelerator, args, pipeline, save_dir, prompt_dict, epoch, steps, prompt_replacement, controlnet=None
):
    Image.new("RGB", (8, 8)).save(os.path.join(save_dir, f"sample_{steps:06d}_{prompt_dict['enum']:02d}.png"))
"""

SCRIPT = """
import argparse
import os
import sys

from accelerate import Accelerator
from library import train_util
from PIL import Image
from tqdm import tqdm

PROMPTS = ["labshape, a red circle", "labshape, a blue triangle"]


class Network:
    def save_weights(self, file, dtype, metadata):
        with open(file, "wb") as f:
            f.write(b"lora")


class Optimizer:
    def __init__(self, lr):
        self.param_groups = [{"lr": lr}, {"lr": lr / 10}]


class Loader:
    def __init__(self, length):
        self.dataset = list(range(length))

    def __len__(self):
        return len(self.dataset)


def sample(accelerator, args, step):
    save_dir = os.path.join(args.output_dir, "sample")
    os.makedirs(save_dir, exist_ok=True)
    for enum, prompt in enumerate(PROMPTS):
        if hasattr(train_util, "sample_image_inference"):
            prompt_dict = {"prompt": prompt, "enum": enum}
            train_util.sample_image_inference(accelerator, args, None, save_dir, prompt_dict, None, step, None)
        else:
            Image.new("RGB", (8, 8)).save(os.path.join(save_dir, f"plain_{step:06d}_{enum:02d}.png"))


def loss_of(step):
    return 1.5 - step / 10


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_train_steps", type=int, default=6)
    parser.add_argument("--epoch_len", type=int, default=4)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--initial_step", type=int, default=0)
    parser.add_argument("--save_every_n_steps", type=int)
    parser.add_argument("--save_state", action="store_true")
    parser.add_argument("--sample_every_n_steps", type=int)
    parser.add_argument("--sample_at_first", action="store_true")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--output_name", default="lab_lora")
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--fail", choices=["none", "raise", "exit", "interrupt", "wait"], default="none")
    parser.add_argument("--fail_at", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "cwd_and_argv.txt"), "w") as f:
        f.write(os.getcwd() + "\\n" + sys.argv[0] + "\\n" + sys.path[0] + "\\n")
    hook_points = hasattr(train_util, "LossRecorder")

    accelerator = train_util.prepare_accelerator(args)
    network, optimizer, loader = accelerator.prepare(Network(), Optimizer(args.learning_rate), Loader(args.epoch_len))
    if args.sample_at_first:
        sample(accelerator, args, 0)
    tqdm(range(3), desc="read caption").update(1)
    bar = tqdm(range(args.max_train_steps - args.initial_step), desc="steps")
    recorder = train_util.LossRecorder() if hook_points else None
    validation_recorder = train_util.LossRecorder() if hook_points else None
    global_step = args.initial_step
    if args.fail == "wait":
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.read()
    while global_step < args.max_train_steps:
        epoch, step = divmod(global_step, args.epoch_len)
        loss = loss_of(global_step + 1)
        accelerator.backward(loss)
        bar.update(1)
        global_step += 1
        if args.sample_every_n_steps and global_step % args.sample_every_n_steps == 0:
            sample(accelerator, args, global_step)
        if args.save_every_n_steps and global_step % args.save_every_n_steps == 0:
            stem = os.path.join(args.output_dir, f"{args.output_name}-step{global_step:08d}")
            network.save_weights(stem + ".safetensors", None, {})
            if args.save_state:
                accelerator.save_state(stem + "-state")
        if recorder is not None:
            recorder.add(epoch=epoch, step=step, loss=loss)
            validation_recorder.add(epoch=epoch, step=0, loss=99.0)
        if global_step == args.fail_at:
            if args.fail == "raise":
                raise ValueError(f"boom at step {global_step}")
            if args.fail == "exit":
                sys.exit(3)
            if args.fail == "interrupt":
                raise KeyboardInterrupt
    if hook_points:
        accelerator.end_training()
    if args.save_state:
        accelerator.save_state(os.path.join(args.output_dir, f"{args.output_name}-state"))
    network.save_weights(os.path.join(args.output_dir, f"{args.output_name}.safetensors"), None, {})
    with open(os.path.join(args.output_dir, "finished.txt"), "w") as f:
        f.write("done")


if __name__ == "__main__":
    main()
"""


def write_fake_sd_scripts(root: Path, *, with_hook_points: bool = True) -> Path:
    """Write the fake checkout under ``root``; return ``root``."""
    files = {
        "tqdm/__init__.py": "from .std import tqdm\n",
        "tqdm/std.py": TQDM,
        "accelerate/__init__.py": "from .accelerator import Accelerator\n",
        "accelerate/accelerator.py": ACCELERATOR,
        "PIL/__init__.py": "",
        "PIL/Image.py": PIL_IMAGE,
        "library/__init__.py": "",
        "library/train_util.py": TRAIN_UTIL_CORE + (TRAIN_UTIL_HOOK_POINTS if with_hook_points else ""),
        "fake_train.py": SCRIPT,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"), encoding="utf-8")
    return root
