# SPDX-License-Identifier: Apache-2.0
"""The recorded facts the stand-in is built from (``tests/fixtures/comfyui/``).

Fixture layout (written by ``tests.contract.seed`` from the reference recordings and by
``python -m tests.contract.record`` from a live ComfyUI):

* ``object_info.json`` — the server's ``/object_info``;
* ``server/{system_stats,features,models}.json`` — its other answers;
* ``runs/<case>.json`` — ``{"case", "source", "frames": [{t, kind, msg|...}], "runs": [{label,
  prompt_id, graph, history}], "sockets"?: {name: frames}}``: websocket transcripts;
* ``runs/model_loads.json`` — the same format, for prompts that switch checkpoint or LoRA set and prompts that
  rerun the model just loaded (labels ``checkpoint_switch``, ``lora_switch``, ``rerun``; written by
  ``python -m tests.contract.record_loads``): what a switch costs (:func:`switch_extras`);
* ``prompt_errors.json`` / ``upload_image.json`` — HTTP answers per case.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.standin.comfyui.loading import MODEL_LOADERS, LoadCosts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "comfyui"
_DEFAULT_NODE_S = 0.2


def read_json(path: Path) -> Any:
    """Parse one fixture file."""
    return json.loads(path.read_text())


def write_json(path: Path, data: Any) -> None:
    """Write a fixture file (indented, diff-friendly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def run_fixture(case: str) -> dict[str, Any]:
    """``runs/<case>.json``."""
    data: dict[str, Any] = read_json(FIXTURES / "runs" / f"{case}.json")
    return data


@dataclass(frozen=True)
class Recorded:
    """What the stand-in takes from the recordings."""

    object_info: dict[str, Any]
    features: dict[str, Any]
    system_stats: dict[str, Any]
    model_folders: list[str]
    models: dict[str, list[str]]
    node_seconds: dict[str, float]
    step_seconds: dict[str, float]
    #: Recorded ``execution_error`` payloads by failure kind ("lora": corrupt LoRA, "image": not an image).
    error_templates: dict[str, dict[str, Any]]
    #: What a checkpoint or LoRA-set switch adds to a prompt.
    load_costs: LoadCosts = field(default_factory=LoadCosts)

    def seconds_for(self, class_type: str) -> float:
        """Recorded wall time of a non-sampling node (a default for classes never recorded)."""
        return self.node_seconds.get(class_type, _DEFAULT_NODE_S)


def _prompt_frames(frames: list[dict[str, Any]], prompt_id: str) -> list[tuple[float, str, dict[str, Any]]]:
    out = []
    for frame in frames:
        msg = frame.get("msg") if frame.get("kind") == "text" else None
        if msg and msg.get("data", {}).get("prompt_id") == prompt_id and msg["type"] != "progress_state":
            out.append((float(frame["t"]), str(msg["type"]), msg["data"]))
    return out


def measure_timings(fixture: dict[str, Any]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per class: how long each executed node took, and per sampling step, in a recorded run."""
    nodes: dict[str, list[float]] = defaultdict(list)
    steps: dict[str, list[float]] = defaultdict(list)
    for run in fixture["runs"]:
        graph = run.get("graph") or {}
        seq = _prompt_frames(fixture["frames"], run["prompt_id"])
        for i, (t, kind, data) in enumerate(seq):
            if kind != "executing" or data.get("node") not in graph:
                continue
            node = data["node"]
            end = next((t2 for t2, k2, _ in seq[i + 1 :] if k2 != "progress" and k2 != "executed"), None)
            if end is None:
                continue
            class_type = graph[node]["class_type"]
            n_steps = sum(1 for _, k2, d2 in seq[i + 1 :] if k2 == "progress" and d2.get("node") == node)
            if n_steps:
                steps[class_type].append((end - t) / n_steps)
            else:
                nodes[class_type].append(end - t)
    return nodes, steps


SWITCH_LABELS = ("checkpoint_switch", "lora_switch")


@dataclass(frozen=True)
class PromptTimes:
    """One recorded prompt: its execution (``execution_start`` to its end) and each executed node's time."""

    execution_s: float
    nodes: dict[str, float]


def prompt_times(fixture: dict[str, Any], prompt_id: str) -> PromptTimes | None:
    """The times of one prompt of a recording (None when it did not run to ``execution_success``)."""
    seq = _prompt_frames(fixture["frames"], prompt_id)
    starts = [t for t, kind, _ in seq if kind == "execution_start"]
    ends = [t for t, kind, _ in seq if kind == "execution_success"]
    if not starts or not ends:
        return None
    nodes: dict[str, float] = {}
    for i, (t, kind, data) in enumerate(seq):
        if kind == "executing" and data.get("node") is not None:
            end = next((t2 for t2, k2, _ in seq[i + 1 :] if k2 not in ("progress", "executed")), None)
            if end is not None:
                nodes[str(data["node"])] = end - t
    return PromptTimes(ends[0] - starts[0], nodes)


def _reruns(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for run in fixture["runs"] if run["label"] == "rerun" and not run.get("disturbed")]


def switch_extras(fixture: dict[str, Any]) -> dict[str, list[float]]:
    """Per switch label, the seconds each recorded switch added to its prompt: its execution minus the median
    execution of the reruns (same graph, new seed and text, nothing to load), minus what the nodes other than
    model loaders that ran in the switch but in no rerun take when nothing loads (the negative prompt's encoder,
    whose clip the switch changed; after ``/free`` the empty latent), counted at the reruns' median time of
    their class: the stand-in runs those nodes by their own times, while the loading they did in the switch
    (the first text encoder moves and patches the clip) is part of the switch. Runs that another client's prompt
    came before (``disturbed``) are left out."""
    extras: dict[str, list[float]] = {label: [] for label in SWITCH_LABELS}
    reruns = _reruns(fixture)
    timed = [times for run in reruns if (times := prompt_times(fixture, run["prompt_id"])) is not None]
    if not timed:
        return extras
    baseline = statistics.median(times.execution_s for times in timed)
    rerun_nodes = set.intersection(*(set(times.nodes) for times in timed))
    warm_nodes, _ = measure_timings({"frames": fixture["frames"], "runs": reruns})
    warm = {class_type: statistics.median(values) for class_type, values in warm_nodes.items()}
    for switch in fixture["runs"]:
        times = prompt_times(fixture, switch["prompt_id"])
        if switch["label"] not in extras or switch.get("disturbed") or times is None:
            continue
        graph = switch.get("graph") or {}
        classes = {node: str(graph.get(node, {}).get("class_type")) for node in times.nodes}
        only_here = sum(
            warm.get(classes[node], seconds)
            for node, seconds in times.nodes.items()
            if node not in rerun_nodes and classes[node] not in MODEL_LOADERS
        )
        extras[switch["label"]].append(times.execution_s - only_here - baseline)
    return extras


def rerun_seconds(fixture: dict[str, Any]) -> list[float]:
    """Execution times of the undisturbed reruns."""
    found = (prompt_times(fixture, run["prompt_id"]) for run in _reruns(fixture))
    return [times.execution_s for times in found if times is not None]


def load_costs_of(fixture: dict[str, Any]) -> LoadCosts:
    """The stand-in's switch charges: the median of each kind's recorded switches (0 when none was recorded)."""
    extras = switch_extras(fixture)

    def median(label: str) -> float:
        return max(0.0, statistics.median(extras[label])) if extras[label] else 0.0

    return LoadCosts(checkpoint_s=median("checkpoint_switch"), lora_s=median("lora_switch"))


def _error_templates() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for kind, case in (("lora", "exec_error"), ("image", "bad_image")):
        if not (FIXTURES / "runs" / f"{case}.json").exists():
            continue
        for frame in run_fixture(case)["frames"]:
            msg = frame.get("msg") or {}
            if msg.get("type") == "execution_error":
                found[kind] = dict(msg["data"])
    return found


@functools.cache
def recorded_warm() -> Recorded:
    """:func:`recorded` with the node and step times of the reruns in ``runs/model_loads.json``: prompts that
    load nothing, measured on the server and in the session the switch costs come from, so that runs and
    switches keep their recorded proportion. (The default timings come from the first recordings, whose
    prompts loaded their models, on a slower machine; the tests are tuned to them.)"""
    fixture = run_fixture("model_loads")
    nodes, steps = measure_timings({"frames": fixture["frames"], "runs": _reruns(fixture)})
    rec = recorded()
    return dataclasses.replace(
        rec,
        node_seconds={**rec.node_seconds, **{k: statistics.median(v) for k, v in nodes.items()}},
        step_seconds={**rec.step_seconds, **{k: statistics.median(v) for k, v in steps.items()}},
    )


@functools.cache
def recorded() -> Recorded:
    """Load (once) everything the stand-in needs from the fixtures."""
    nodes: dict[str, list[float]] = defaultdict(list)
    steps: dict[str, list[float]] = defaultdict(list)
    for case in ("txt2img", "lora"):
        case_nodes, case_steps = measure_timings(run_fixture(case))
        for key, values in case_nodes.items():
            nodes[key].extend(values)
        for key, values in case_steps.items():
            steps[key].extend(values)
    models = read_json(FIXTURES / "server" / "models.json")
    return Recorded(
        object_info=read_json(FIXTURES / "object_info.json"),
        features=read_json(FIXTURES / "server" / "features.json"),
        system_stats=read_json(FIXTURES / "server" / "system_stats.json"),
        model_folders=list(models["folders"]),
        models={k: list(v) for k, v in models.items() if k != "folders"},
        node_seconds={k: statistics.median(v) for k, v in nodes.items()},
        step_seconds={k: statistics.median(v) for k, v in steps.items()},
        error_templates=_error_templates(),
        load_costs=load_costs_of(run_fixture("model_loads")),
    )


def model_combo_inputs(object_info: dict[str, Any], models: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """(class, input) pairs whose combo lists a model folder, found by matching the recorded lists."""
    by_list = {tuple(sorted(files)): folder for folder, files in models.items() if files}
    found: dict[tuple[str, str], str] = {}
    for class_type, info in object_info.items():
        for section in ("required", "optional"):
            for name, spec in (info.get("input", {}).get(section) or {}).items():
                options = combo_options(spec)
                if options and tuple(sorted(options)) in by_list:
                    found[(class_type, name)] = by_list[tuple(sorted(options))]
    return found


def combo_options(spec: Any) -> list[Any] | None:
    """The option list of a combo input spec (old ``[[...], {}]`` or new ``["COMBO", {"options"}]``)."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return options if isinstance(options, list) else None
    return None


#: Loader inputs whose recording listed no files (nothing was installed), by model folder.
KNOWN_MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
}


@functools.cache
def _combo_targets() -> tuple[dict[tuple[str, str], str], tuple[tuple[str, str], ...]]:
    rec = recorded()
    uploads = tuple(
        (class_type, name)
        for class_type, node in rec.object_info.items()
        for section in ("required", "optional")
        for name, spec in (node.get("input", {}).get(section) or {}).items()
        if _is_upload_combo(spec)
    )
    known = {k: v for k, v in KNOWN_MODEL_INPUTS.items() if k[0] in rec.object_info}
    return {**known, **model_combo_inputs(rec.object_info, rec.models)}, uploads


def object_info_for(models: dict[str, list[str]], input_files: list[str]) -> dict[str, Any]:
    """The recorded ``/object_info`` with model and input-file combos listing this server's files.

    Recorded options without a file extension (built-ins such as ``pixel_space``) are kept.
    """
    recorded_info = recorded().object_info
    by_model, uploads = _combo_targets()
    info = dict(recorded_info)
    for class_type in {c for c, _ in by_model} | {c for c, _ in uploads}:
        info[class_type] = copy.deepcopy(recorded_info[class_type])
    for (class_type, name), folder in by_model.items():
        builtins = [o for o in _options_of(info[class_type], name) if isinstance(o, str) and "." not in o]
        _set_options(info[class_type], name, builtins + sorted(models.get(folder, [])))
    for class_type, name in uploads:
        _set_options(info[class_type], name, sorted(input_files))
    return info


def _options_of(node: dict[str, Any], name: str) -> list[Any]:
    for section in ("required", "optional"):
        spec = (node.get("input", {}).get(section) or {}).get(name)
        if spec is not None:
            return combo_options(spec) or []
    return []


def _is_upload_combo(spec: Any) -> bool:
    return (
        isinstance(spec, list)
        and len(spec) > 1
        and isinstance(spec[1], dict)
        and bool(spec[1].get("image_upload"))
        and combo_options(spec) is not None
    )


def _set_options(node: dict[str, Any], name: str, options: list[str]) -> None:
    for section in ("required", "optional"):
        spec = (node.get("input", {}).get(section) or {}).get(name)
        if spec is None:
            continue
        if isinstance(spec[0], list):
            spec[0] = options
        else:
            spec[1]["options"] = options
