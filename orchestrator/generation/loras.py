# SPDX-License-Identifier: Apache-2.0
"""Resolving a request's ``loras[]`` to the files ComfyUI loads.

Each entry's ``lora`` is looked up first in the caller's LoRA registry (by name or id, ``version`` or the
latest): that gives the file (``comfy_name``, relative to models/loras), the trigger word (put into the prompt
when missing) and the family it was trained for (it must match the base model's). Otherwise it is taken as a
LoRA file name the backends offer (``x`` may stand for ``x.safetensors``). A file that belongs to another
owner's registered LoRA is never usable by file name: it is reported as unknown, like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from comfy_workflows.templates import LoraRef, LoraRequest
from orchestrator.db.models import Lora, LoraVersion
from orchestrator.loras.registry import insert_trigger_word, resolve_lora

SUFFIX = ".safetensors"


@dataclass(frozen=True)
class ResolvedLoras:
    """The request's LoRAs as file references, what to record, and the prompt with trigger words."""

    refs: list[LoraRef]
    records: list[dict[str, Any]]
    prompt: str
    errors: list[dict[str, str]]


async def foreign_lora_files(engine: AsyncEngine, owner_id: uuid.UUID, names: Collection[str]) -> set[str]:
    """Those of ``names`` that are files of another owner's registered LoRAs."""
    if not names:
        return set()
    stmt = (
        select(LoraVersion.comfy_name)
        .join(Lora, Lora.id == LoraVersion.lora_id)
        .where(LoraVersion.comfy_name.in_(list(names)), Lora.owner_id != owner_id)
    )
    async with engine.connect() as conn:
        return {row[0] for row in (await conn.execute(stmt)).all()}


def _file_name(ref: str, offered: Collection[str]) -> str:
    if ref not in offered and ref + SUFFIX in offered:
        return ref + SUFFIX
    return ref


async def resolve_loras(
    engine: AsyncEngine,
    owner_id: uuid.UUID,
    items: Sequence[LoraRequest],
    *,
    prompt: str,
    family: str,
    offered: Collection[str],
) -> ResolvedLoras:
    """Resolve every entry; ``errors`` name ``loras[i].lora`` (or ``.version``) for the ones that cannot be."""
    refs: list[LoraRef] = []
    records: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    by_name: dict[int, str] = {}
    for index, item in enumerate(items):
        field = f"loras[{index}]"
        registered = await resolve_lora(engine, owner_id, item.lora, item.version)
        if registered is not None:
            if registered.base_family != family:
                reason = f"LoRA {item.lora!r} was trained for {registered.base_family}; the base model is {family}"
                errors.append({"field": f"{field}.lora", "reason": reason})
            prompt = insert_trigger_word(prompt, registered.trigger_word)
            refs.append(LoraRef.for_request(item, registered.comfy_name))
            records.append(
                {
                    "lora": item.lora,
                    "lora_id": str(registered.lora_id),
                    "version": registered.version,
                    "file": registered.comfy_name,
                    "sha256": registered.sha256,
                    "trigger_word": registered.trigger_word,
                    "strength_model": item.strength_model,
                    "strength_clip": item.strength_clip,
                }
            )
            continue
        if item.version is not None:
            errors.append(
                {"field": f"{field}.version", "reason": f"you have no LoRA {item.lora!r} version {item.version}"}
            )
        name = _file_name(item.lora, offered)
        by_name[index] = name
        refs.append(LoraRef.for_request(item, name))
        records.append(
            {
                "lora": item.lora,
                "file": name,
                "strength_model": item.strength_model,
                "strength_clip": item.strength_clip,
            }
        )
    foreign = await foreign_lora_files(engine, owner_id, set(by_name.values()))
    for index, name in by_name.items():
        if name in foreign:
            errors.append({"field": f"loras[{index}].lora", "reason": f"unknown LoRA {items[index].lora!r}"})
    return ResolvedLoras(refs, records, prompt, errors)
