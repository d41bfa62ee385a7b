"""The ``atelier`` command end to end through the service and both stand-ins: generate and train --watch
checked in --json, the live display in a pseudo-terminal (step/total and ETA), Ctrl-C detaching, cancel,
the config file, and the server's commands joining the client's."""

from __future__ import annotations

import asyncio
import importlib
import re
import tomllib
import uuid
from importlib.metadata import EntryPoint
from pathlib import Path

import pexpect
import pytest
from PIL import Image

from tests.integration.client.cli_support import CLI, atelier, cli_env
from tests.integration.client.conftest import OFFERED_LORA, ClientService
from tests.integration.training.conftest import BASE_MODEL
from tests.support.db import wait_for_terminal

TRAIN = ["--kind", "person", "--consent-statement", "signed release", "--adult", "--model", BASE_MODEL]


async def test_generate_end_to_end_in_json(client_service: ClientService, api_key: str, tmp_path: Path) -> None:
    env = cli_env(client_service.url, api_key)
    ran = await atelier(
        env, "generate", "a fox in the snow", "--model", BASE_MODEL, "--lora", f"{OFFERED_LORA}:0.7",
        "-n", "5", "-W", "64", "-H", "64", "--steps", "3", "--seed", "11", "-o", str(tmp_path), "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    result = ran.json()
    assert [len(str(job["id"])) for job in result["jobs"]] == [36, 36]  # 5 images: a job of 4 and a job of 1
    assert {job["status"] for job in result["jobs"]} == {"succeeded"}
    assert [
        job["payload"].get("batch_size", job["payload"].get("params", {}).get("batch_size")) for job in result["jobs"]
    ]
    previews = [Path(p) for p in result["previews"]]  # saved while the jobs ran
    assert previews
    assert all(p.parent == tmp_path / "previews" and p.stat().st_size > 0 for p in previews)
    images = [Path(p) for p in result["images"]]
    assert len(images) == 5
    for image in images:
        assert image.parent == tmp_path
        with Image.open(image) as png:
            assert png.size == (64, 64)


async def test_train_watch_end_to_end_in_json(
    client_service: ClientService, api_key: str, photo_files: list[Path], tmp_path: Path
) -> None:
    env = cli_env(client_service.url, api_key)
    name = f"Ada {uuid.uuid4().hex[:6]}"
    ran = await atelier(
        env, "train", str(photo_files[0].parent), "--subject", name, *TRAIN, "--steps", "4", "--resolution", "64",
        "--sample", "portrait", "--sample-every", "2", "--watch", "-o", str(tmp_path), "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    result = ran.json()
    assert result["subject"]["name"] == name
    assert result["subject"]["consent"]["subject_is_adult"] is True
    assert result["photos"]["accepted"] == len(photo_files)
    [job] = result["jobs"]
    assert job["status"] == "succeeded"
    assert job["progress"]["step"] == job["progress"]["total"] == 4
    files = [Path(f) for f in result["files"]]
    assert [f.suffix for f in files if f.parent.name == "samples"] == [".png", ".png"]  # saved as they arrived
    [lora] = [f for f in files if f.suffix == ".safetensors"]
    assert lora.stat().st_size > 0
    listed = await atelier(env, "loras", "--json")
    assert lora.name.split("-v")[0] in {lo["name"] for lo in listed.json()["items"]}


def _in_terminal(args: list[str], env: dict[str, str], until: str) -> tuple[str, int | None]:
    child = pexpect.spawn(CLI[0], [*CLI[1:], *args], env=env, dimensions=(40, 160), encoding="utf-8", timeout=90)
    try:
        child.expect(until)
        child.expect(pexpect.EOF)
        return child.before if isinstance(child.before, str) else "", child.wait()
    finally:
        child.close(force=True)


async def test_the_live_display_shows_steps_and_eta_in_a_terminal(
    client_service: ClientService, api_key: str, photo_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SD_STEP_DELAY", "0.3")  # the stand-in trainer, launched by the in-process service
    env = cli_env(client_service.url, api_key, TERM="xterm-256color")
    args = ["train", str(photo_files[0].parent), "--subject", f"Live {uuid.uuid4().hex[:6]}", *TRAIN,
            "--steps", "6", "--resolution", "64", "--watch"]  # fmt: skip
    screen, code = await asyncio.to_thread(_in_terminal, args, env, r"step [1-5]/6")
    assert code == 0, screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"step 6/6\s+100\.0%", plain), plain[-2000:]
    assert re.search(r"loss \d\.\d{4}", plain)
    assert re.search(r"\d+\.\d\d it/s", plain)
    assert re.search(r"ETA \d:\d\d:\d\d", plain)
    assert "succeeded" in plain


def _interrupt_watch(job_id: str, env: dict[str, str]) -> tuple[str, int | None]:
    child = pexpect.spawn(CLI[0], [*CLI[1:], "watch", job_id], env=env, dimensions=(40, 160), encoding="utf-8")
    try:
        child.expect(r"step \d+/400", timeout=60)
        child.sendintr()
        child.expect("detached", timeout=30)
        child.expect(pexpect.EOF, timeout=30)
        return str(child.before), child.wait()
    finally:
        child.close(force=True)


async def test_ctrl_c_detaches_and_the_job_goes_on_then_cancel_stops_it(
    client_service: ClientService, api_key: str
) -> None:
    env = cli_env(client_service.url, api_key, TERM="xterm-256color")
    from atelier_client import AsyncClient

    async with AsyncClient(client_service.url, api_key=api_key) as sdk:
        # 400 s of work: the job cannot end on its own before the cancel, however loaded the machine is
        job = await sdk.create_noop_job(steps=400, step_ms=1000)
        screen, code = await asyncio.to_thread(_interrupt_watch, str(job.id), env)
        assert code == 130
        assert f"atelier watch {job.id}" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
        assert (await sdk.get_job(job.id)).status in ("queued", "running")  # not cancelled by the detach
        cancelled = await atelier(cli_env(client_service.url, api_key), "cancel", str(job.id), "--json")
        assert cancelled.code == 0, cancelled.stderr
        await wait_for_terminal(client_service.database_url, [job.id])
        assert (await sdk.get_job(job.id)).status == "cancelled"


async def test_config_file_and_errors(client_service: ClientService, api_key: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{client_service.url}"\napi_key = "{api_key}"\n')
    env = cli_env("", None, ATELIER_CONFIG=str(config))
    del env["ATELIER_URL"]
    ran = await atelier(env, "templates", "--json")
    assert ran.code == 0, ran.stderr
    assert "txt2img" in {t["name"] for t in ran.json()["items"]}
    wrong = await atelier(cli_env(client_service.url, "atl_000000000000_nope"), "jobs")
    assert wrong.code == 1
    assert "401" in wrong.stderr
    invalid = await atelier(
        cli_env(client_service.url, api_key), "generate", "x", "--model", BASE_MODEL, "-W", "7", "--json"
    )
    assert invalid.code == 1
    assert "width" in invalid.stderr


async def test_the_server_commands_join_the_client_command(monkeypatch: pytest.MonkeyPatch) -> None:
    cli_main = importlib.import_module("atelier_client.cli.main")
    server = EntryPoint(name="server", value="orchestrator.cli:register_server_commands", group="atelier.commands")
    monkeypatch.setattr(cli_main, "entry_points", lambda group: [server] if group == cli_main.COMMAND_GROUP else [])
    parser = cli_main.build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    assert {"serve", "worker", "migrate", "keys", "generate", "train", "watch"} <= commands
    args = parser.parse_args(["keys", "revoke", "atl_0123456789ab"])
    assert args.func.__name__ == "cmd_keys_revoke"


def test_the_service_declares_its_commands_for_the_client() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    group = pyproject["project"]["entry-points"]["atelier.commands"]
    assert group == {"server": "orchestrator.cli:register_server_commands"}
    assert "scripts" not in pyproject["project"]  # `atelier` is the client's
