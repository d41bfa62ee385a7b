"""User commands on existing things: jobs, watch, cancel, download, subjects, photos, loras, templates."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from atelier_client.async_client import AsyncClient
from atelier_client.cli.lookup import find_lora, find_subject
from atelier_client.cli.output import print_json, print_table
from atelier_client.cli.session import Session, short
from atelier_client.models import JobOut

Sub = argparse._SubParsersAction


def cmd_jobs(args: argparse.Namespace) -> int:
    """List your jobs (newest first), or show one."""
    session = Session(args)
    if args.job:
        job = session.run(lambda c: c.get_job(args.job))
        print_json(job) if session.json else session.console.print_json(job.model_dump_json())
        return 0
    page = session.run(lambda c: c.list_jobs(kind=args.kind, status=args.status, limit=args.limit))
    if session.json:
        print_json(page)
    else:
        rows = [(j.id, j.kind, j.status, _progress(j), j.created_at.strftime("%Y-%m-%d %H:%M:%S")) for j in page.items]
        print_table(session.console, "jobs", ("id", "kind", "status", "progress", "created"), rows)
    return 0


def _progress(job: JobOut) -> str:
    progress = job.progress or {}
    return f"{progress.get('step')}/{progress.get('total')}" if progress.get("total") else ""


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow jobs live until they end (Ctrl-C detaches; the jobs go on)."""
    session = Session(args)

    async def watch(client: AsyncClient) -> list[Any]:
        jobs = [(uuid.UUID(j), short(j)) for j in args.jobs]
        return await session.watch(client, jobs, Path(args.out) if args.out else None)

    try:
        watched = session.run(watch)
    except KeyboardInterrupt:
        return session.detached(list(args.jobs))
    if session.json:
        print_json({"jobs": [w.final for w in watched], "files": [p for w in watched for p in w.saved]})
    return 0 if all(w.final is not None and w.final.status == "succeeded" for w in watched) else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel jobs (queued ones at once, running ones are stopped by their worker)."""
    session = Session(args)

    async def cancel(client: AsyncClient) -> list[JobOut]:
        return [await client.cancel_job(job) for job in args.jobs]

    jobs = session.run(cancel)
    if session.json:
        print_json({"jobs": jobs})
    for job in jobs:
        session.console.print(f"{job.id}: {job.status}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Save a job's results: a generation's images, a training's LoRA file."""
    session = Session(args)
    out = Path(args.out)

    async def download(client: AsyncClient) -> list[Path]:
        return await download_results(client, args.job, out)

    files = session.run(download)
    if session.json:
        print_json({"files": files})
    for file in files:
        session.console.print(f"saved {file}")
    return 0


async def download_results(client: AsyncClient, job_id: str | uuid.UUID, out: Path) -> list[Path]:
    """A finished job's files saved under ``out``."""
    job = await client.get_job(job_id)
    if job.kind == "generation":
        images = (await client.get_generation(job.id)).images or []
        return [await client.download_image(job.id, i.index, out / f"{job.id}-{i.index}.png") for i in images]
    if job.kind == "training":
        lora = (await client.get_training(job.id)).lora
        if lora is None:
            return []
        return [
            await client.download_lora(lora.lora_id, lora.version, out / f"{lora.name}-v{lora.version}.safetensors")
        ]
    return []


def cmd_subjects(args: argparse.Namespace) -> int:
    """List subjects, show one, or delete one (erasing its photos, datasets and LoRAs)."""
    session = Session(args)

    async def act(client: AsyncClient) -> Any:
        if args.action == "list":
            return await client.list_subjects(limit=200)
        subject = await find_subject(client, args.subject)
        return await client.delete_subject(subject.id) if args.action == "delete" else subject

    result = session.run(act)
    if session.json or args.action != "list":
        print_json(result)
    else:
        rows = [(s.id, s.name, s.kind, s.trigger_word, s.photo_count) for s in result.items]
        print_table(session.console, "subjects", ("id", "name", "kind", "trigger", "photos"), rows)
    return 0


def cmd_photos_add(args: argparse.Namespace) -> int:
    """Upload photos (files or folders) to a subject; a verdict per file."""
    session = Session(args)
    files = photo_files([Path(p) for p in args.paths])

    async def add(client: AsyncClient) -> Any:
        subject = await find_subject(client, args.subject)
        return await client.upload_photos(subject.id, files)

    result = session.run(add)
    if session.json:
        print_json(result)
    else:
        rows = [(v.filename, "accepted" if v.accepted else v.reason, v.message) for v in result.verdicts]
        print_table(session.console, f"{result.accepted} accepted", ("file", "verdict", "message"), rows)
    return 0 if result.accepted else 1


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def photo_files(paths: list[Path]) -> list[Path]:
    """The image files named, folders expanded (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def cmd_loras(args: argparse.Namespace) -> int:
    """List your LoRAs and their versions, or show one (by name or id)."""
    session = Session(args)

    async def act(client: AsyncClient) -> Any:
        return await find_lora(client, args.lora) if args.lora else await client.list_loras(limit=200)

    result = session.run(act)
    if session.json or args.lora:
        print_json(result)
    else:
        rows = [(lo.id, lo.name, lo.base_family, lo.trigger_word, len(lo.versions)) for lo in result.items]
        print_table(session.console, "loras", ("id", "name", "family", "trigger", "versions"), rows)
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    """List templates, or show one (input schema, graphs)."""
    session = Session(args)
    if args.name:
        print_json(session.run(lambda c: c.get_template(args.name)))
        return 0
    templates = session.run(lambda c: c.list_templates())
    if session.json:
        print_json(templates)
    else:
        rows = [(t.name, "registered" if t.registered else "built-in", t.description) for t in templates.items]
        print_table(session.console, "templates", ("name", "kind", "description"), rows)
    return 0


def register(sub: Sub, common: argparse.ArgumentParser) -> None:
    """Add these commands."""
    jobs = sub.add_parser("jobs", parents=[common], help=cmd_jobs.__doc__)
    jobs.add_argument("job", nargs="?", help="a job id to show")
    jobs.add_argument("--kind", help="only jobs of this kind (generation, training, erasure, noop)")
    jobs.add_argument("--status", help="only jobs in this status")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=cmd_jobs)
    watch = sub.add_parser("watch", parents=[common], help=cmd_watch.__doc__)
    watch.add_argument("jobs", nargs="+", help="job ids")
    watch.add_argument("-o", "--out", help="save previews and samples here as they arrive")
    watch.set_defaults(func=cmd_watch)
    cancel = sub.add_parser("cancel", parents=[common], help=cmd_cancel.__doc__)
    cancel.add_argument("jobs", nargs="+", help="job ids")
    cancel.set_defaults(func=cmd_cancel)
    download = sub.add_parser("download", parents=[common], help=cmd_download.__doc__)
    download.add_argument("job", help="a generation or training job id")
    download.add_argument("-o", "--out", default=".", help="folder to save into (default: here)")
    download.set_defaults(func=cmd_download)
    subjects = sub.add_parser("subjects", parents=[common], help=cmd_subjects.__doc__)
    subjects.add_argument("action", nargs="?", choices=("list", "show", "delete"), default="list")
    subjects.add_argument("subject", nargs="?", help="a subject's name or id")
    subjects.set_defaults(func=cmd_subjects)
    photos = sub.add_parser("photos", help="a subject's photos").add_subparsers(dest="photos_command", required=True)
    add = photos.add_parser("add", parents=[common], help=cmd_photos_add.__doc__)
    add.add_argument("subject", help="a subject's name or id")
    add.add_argument("paths", nargs="+", help="image files or folders")
    add.set_defaults(func=cmd_photos_add)
    loras = sub.add_parser("loras", parents=[common], help=cmd_loras.__doc__)
    loras.add_argument("lora", nargs="?", help="a LoRA's name or id to show")
    loras.set_defaults(func=cmd_loras)
    templates = sub.add_parser("templates", parents=[common], help=cmd_templates.__doc__)
    templates.add_argument("name", nargs="?", help="a template to show")
    templates.set_defaults(func=cmd_templates)
