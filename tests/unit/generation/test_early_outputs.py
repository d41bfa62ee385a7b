# SPDX-License-Identifier: Apache-2.0
"""Storing a generation's images from the output node's ``executed`` message, before the prompt ends."""

from __future__ import annotations

import asyncio

from orchestrator.comfy import Executed, Executing, OutputImage
from orchestrator.generation.early_outputs import EarlyOutputs, Stored
from orchestrator.generation.outputs import StoredImage

IMAGE = OutputImage("9", "atelier_00001_.png", "", "output")
OTHER = OutputImage("9", "atelier_00002_.png", "", "output")


class Store:
    """Records what it was asked to store; holds until ``go`` is set; sets ``finished`` once it wrote."""

    def __init__(self) -> None:
        self.calls: list[list[OutputImage]] = []
        self.go = asyncio.Event()
        self.go.set()
        self.finished = asyncio.Event()

    async def __call__(self, images: list[OutputImage]) -> Stored:
        self.calls.append(images)
        await self.go.wait()
        self.finished.set()
        stored = [
            (StoredImage(n, f"generations/j/{n}.png", "0" * 64, 3, "image/png", 1, 1), b"png")
            for n in range(len(images))
        ]
        return stored, []


class Dropped(list[str]):
    """The keys dropped."""

    async def __call__(self, keys: list[str]) -> None:
        self.extend(keys)


async def test_the_output_node_starts_the_storing_once_and_the_end_takes_it() -> None:
    store = Store()
    early = EarlyOutputs(["9"], store, Dropped())
    early.on_event(Executing("9", "SaveImage"))
    early.on_event(Executed("7", (OTHER,)))  # not the output node
    assert store.calls == []
    early.on_event(Executed("9", (IMAGE,)))
    early.on_event(Executed("9", (IMAGE,)))  # a repeat starts nothing more
    stored = await early.take([IMAGE])
    assert stored is not None
    assert [image.key for image, _ in stored[0]] == ["generations/j/0.png"]
    assert store.calls == [[IMAGE]]


async def test_images_other_than_the_result_names_are_discarded_and_stored_the_usual_way() -> None:
    store = Store()
    dropped = Dropped()
    early = EarlyOutputs(["9"], store, dropped)
    early.on_event(Executed("9", (IMAGE,)))
    await store.finished.wait()
    assert await early.take([OTHER]) is None
    assert dropped == ["generations/j/0.png"]
    await early.discard()  # already given up: nothing more to do


async def test_several_output_nodes_or_every_output_start_nothing_early() -> None:
    for nodes in (["9", "12"], None):
        store = Store()
        early = EarlyOutputs(nodes, store, Dropped())
        early.on_event(Executed("9", (IMAGE,)))
        assert await early.take([IMAGE]) is None
        assert store.calls == []


async def test_a_discarded_store_drops_what_it_wrote_and_a_stopped_one_nothing() -> None:
    done, dropped = Store(), Dropped()
    early = EarlyOutputs(["9"], done, dropped)
    early.on_event(Executed("9", (IMAGE,)))
    await done.finished.wait()
    await early.discard()
    assert dropped == ["generations/j/0.png"]

    held, dropped = Store(), Dropped()
    held.go.clear()
    early = EarlyOutputs(["9"], held, dropped)
    early.on_event(Executed("9", (IMAGE,)))
    await early.discard()
    assert dropped == []  # cancelled before it wrote anything
