"""The commands that start work: ``generate`` and ``train``, watched live with ``--watch`` (the default for
generate), results saved under ``--out``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from atelier_client.async_client import AsyncClient
from atelier_client.cli.jobs_commands import download_results, photo_files
from atelier_client.cli.lookup import find_lora, lookup_subject
from atelier_client.cli.output import print_json
from atelier_client.cli.session import Session, require, short
from atelier_client.errors import AtelierError, NotFound
from atelier_client.models import Accepted

Sub = argparse._SubParsersAction
MAX_BATCH = 4  # the API's batch_size limit: more images become more jobs, watched together


def lora_spec(text: str) -> dict[str, Any]:
    """``name`` or ``name:strength`` (both strengths) as a request's LoRA entry."""
    name, _, strength = text.partition(":")
    entry: dict[str, Any] = {"lora": name}
    if strength:
        entry["strength_model"] = entry["strength_clip"] = float(strength)
    return entry


def batches(count: int) -> list[int]:
    """Images per job for ``count`` images."""
    require(count >= 1, "-n must be at least 1")
    return [MAX_BATCH] * (count // MAX_BATCH) + ([count % MAX_BATCH] if count % MAX_BATCH else [])


async def default_base_model(client: AsyncClient, loras: list[dict[str, Any]]) -> str:
    """The base model when none was named: the first LoRA's, else the only checkpoint the backends offer."""
    for entry in loras:
        try:
            lora = await find_lora(client, entry["lora"])
        except (AtelierError, NotFound):
            continue
        if lora.versions:
            return lora.versions[-1].base_model
    names = [str(c["name"]) for c in (await client.list_models()).checkpoints]
    require(len(names) == 1, f"name a base model with --model (offered: {', '.join(names) or 'none'})")
    return names[0]


async def _generate(session: Session, client: AsyncClient) -> tuple[int, dict[str, Any]]:
    args = session.args
    loras = [lora_spec(spec) for spec in args.lora]
    base_model = args.model or await default_base_model(client, loras)
    fields = {
        "template": args.template,
        "base_model": base_model,
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "loras": loras or None,
        "width": args.width,
        "height": args.height,
        "steps": args.steps,
        "priority": args.priority,
    }
    accepted: list[Accepted] = []
    for index, size in enumerate(batches(args.n)):
        seed = args.seed + index * MAX_BATCH if args.seed is not None else None
        accepted.append(await client.create_generation(**fields, seed=seed, batch_size=size))
    if args.no_wait:
        return 0, {"jobs": accepted}
    out = Path(args.out)
    watched = await session.watch(client, [(a.id, f"generate {short(a.id)}") for a in accepted], out)
    images = [
        p
        for w in watched
        if w.final and w.final.status == "succeeded"
        for p in await download_results(client, w.job_id, out)
    ]
    ok = all(w.final is not None and w.final.status == "succeeded" for w in watched)
    return (0 if ok else 1), {"jobs": [w.final for w in watched], "images": images, "previews": _saved(watched)}


def _saved(watched: list[Any]) -> list[Path]:
    return [p for w in watched for p in w.saved]


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate images: `atelier generate "a fox in the snow" --lora ada -n 4 -o out/`."""
    session = Session(args)
    return _run_and_report(session, lambda client: _generate(session, client), "images")


def _run_and_report(session: Session, work: Any, files_key: str) -> int:
    result: dict[str, Any] = {}

    async def run(client: AsyncClient) -> int:
        code, found = await work(client)
        result.update(found)
        return int(code)

    try:
        code = session.run(run)
    except KeyboardInterrupt:
        return session.detached([str(j.id) for j in result.get("jobs", [])] or ["<job id from `atelier jobs`>"])
    if session.json:
        print_json(result)
    else:
        for job in result.get("jobs", []):
            session.console.print(f"{job.id}: {job.status}")
        for file in result.get(files_key, []):
            session.console.print(f"saved {file}")
    return code


def trigger_from(name: str) -> str:
    """A trigger word from a subject's name: its letters and digits, lower case."""
    word = re.sub(r"[^a-z0-9]", "", name.lower())
    require(len(word) >= 2, "give a --trigger word (2-40 letters or digits)")
    return word[:40]


async def _subject(session: Session, client: AsyncClient) -> Any:
    args = session.args
    existing = await lookup_subject(client, args.subject)
    if existing is not None:
        return existing
    consented = bool(args.consent or args.consent_statement)
    person = {
        "consent_confirmed": consented,
        "subject_is_adult": bool(args.adult),
        "consent_statement": args.consent_statement,
    }
    return await client.create_subject(
        args.subject,
        args.kind,
        args.trigger or trigger_from(args.subject),
        class_word=args.class_word,
        **(person if args.kind == "person" or consented else {}),
    )


async def _train(session: Session, client: AsyncClient) -> tuple[int, dict[str, Any]]:
    args = session.args
    subject = await _subject(session, client)
    files = photo_files([Path(p) for p in args.photos])
    uploaded = await client.upload_photos(subject.id, files) if files else None
    fields = {
        "preset": args.preset,
        "steps": args.steps,
        "resolution": args.resolution,
        "lora_name": args.lora_name,
        "sample_prompts": args.sample or None,
        "sample_every_n_steps": args.sample_every,
        "priority": args.priority,
    }
    base_model = args.model or await default_base_model(client, [])
    accepted = await client.create_training(subject_id=subject.id, base_model=base_model, **fields)
    result: dict[str, Any] = {"subject": subject, "photos": uploaded, "jobs": [accepted]}
    if not args.watch:
        return 0, result
    out = Path(args.out) if args.out else None
    [watched] = await session.watch(client, [(accepted.id, f"train {subject.name}")], out)
    result["jobs"] = [watched.final]
    files_saved = _saved([watched])
    if out is not None and watched.final is not None and watched.final.status == "succeeded":
        files_saved += await download_results(client, accepted.id, out)
    result["files"] = files_saved
    return (0 if watched.final is not None and watched.final.status == "succeeded" else 1), result


def cmd_train(args: argparse.Namespace) -> int:
    """Train a LoRA from photos: `atelier train ./photos --subject ada --kind person --consent-statement "…"
    --adult --watch`."""
    session = Session(args)
    return _run_and_report(session, lambda client: _train(session, client), "files")


def register(sub: Sub, common: argparse.ArgumentParser) -> None:
    """Add ``generate`` and ``train``."""
    gen = sub.add_parser("generate", parents=[common], help=cmd_generate.__doc__)
    gen.add_argument("prompt", help="what the image should show")
    gen.add_argument("--model", help="base model (default: the LoRA's, or the only one offered)")
    gen.add_argument("--lora", action="append", default=[], help="a LoRA by name, optionally name:strength")
    gen.add_argument("-n", type=int, default=1, help="how many images (4 per job)")
    gen.add_argument("--negative", help="negative prompt")
    gen.add_argument("--template", default="txt2img", help="template name (default txt2img)")
    gen.add_argument("--width", "-W", type=int)
    gen.add_argument("--height", "-H", type=int)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--priority", type=int)
    gen.add_argument("-o", "--out", default=".", help="folder for the images (default: here)")
    gen.add_argument("--no-wait", action="store_true", help="queue and return (follow later with `atelier watch`)")
    gen.set_defaults(func=cmd_generate)
    train = sub.add_parser("train", parents=[common], help=cmd_train.__doc__)
    train.add_argument("photos", nargs="*", help="image files or folders to upload first")
    train.add_argument("--subject", required=True, help="the subject's name (created when new) or id")
    train.add_argument("--kind", choices=("person", "style", "product", "character"), default="person")
    train.add_argument("--trigger", help="trigger word (default: from the name)")
    train.add_argument("--class-word", help="class word for captions (person, dog, ...)")
    train.add_argument("--consent", action="store_true", help="the person agreed to be trained on")
    train.add_argument("--consent-statement", help="how and when consent was given (implies --consent)")
    train.add_argument("--adult", action="store_true", help="the person is an adult")
    train.add_argument("--model", help="base checkpoint (default: the only one offered)")
    train.add_argument("--preset", choices=("fast", "balanced", "quality"))
    train.add_argument("--steps", type=int)
    train.add_argument("--resolution", type=int)
    train.add_argument("--lora-name", help="name of the published LoRA (default: the subject's)")
    train.add_argument("--sample", action="append", default=[], help="a sample prompt rendered while training")
    train.add_argument("--sample-every", type=int, help="render samples every N steps")
    train.add_argument("--priority", type=int)
    train.add_argument("--watch", action="store_true", help="follow the training live")
    train.add_argument("-o", "--out", help="save samples and the LoRA file here")
    train.set_defaults(func=cmd_train)
