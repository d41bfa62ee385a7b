"""Where the remote loader and the sidebar find the LoRA Atelier server: environment first, else the saved file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from custom_nodes.atelier_nodes.atelier_connection import (
    SETTINGS_FILE,
    ConnectionSettingsError,
    check_server_url,
    load_connection,
    save_connection,
)
from custom_nodes.atelier_nodes.remote_loras import server_folder_name


def test_nothing_set_means_no_connection(tmp_path: Path) -> None:
    assert load_connection({}, tmp_path) is None
    assert load_connection({}, None) is None


def test_saved_settings_are_private_and_read_back(tmp_path: Path) -> None:
    save_connection(tmp_path, " http://atelier.lan:8000/ ", "key-1234")
    path = tmp_path / SETTINGS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    connection = load_connection({}, tmp_path)
    assert connection is not None
    assert (connection.server_url, connection.api_key) == ("http://atelier.lan:8000", "key-1234")
    assert (connection.url_source, connection.key_source, connection.key_hint()) == ("settings", "settings", "…1234")


def test_saving_without_a_key_keeps_the_stored_one_and_empty_forgets_it(tmp_path: Path) -> None:
    save_connection(tmp_path, "http://a:1", "secret-key")
    save_connection(tmp_path, "http://b:2", None)
    assert json.loads((tmp_path / SETTINGS_FILE).read_text()) == {"server_url": "http://b:2", "api_key": "secret-key"}
    save_connection(tmp_path, "http://b:2", "")
    connection = load_connection({}, tmp_path)
    assert connection is not None
    assert (connection.api_key, connection.key_source) == (None, None)


def test_the_environment_wins(tmp_path: Path) -> None:
    save_connection(tmp_path, "http://saved:1", "saved-key")
    env = {"ATELIER_URL": "https://env.example", "ATELIER_API_KEY": "env-key"}
    connection = load_connection(env, tmp_path)
    assert connection is not None
    assert (connection.server_url, connection.api_key) == ("https://env.example", "env-key")
    assert (connection.url_source, connection.key_source) == ("environment", "environment")
    only_url = load_connection({"ATELIER_URL": "http://env:9"}, tmp_path)
    assert only_url is not None
    assert (only_url.api_key, only_url.key_source) == ("saved-key", "settings")


@pytest.mark.parametrize("url", ["ftp://x", "atelier.lan:8000", "http://", "http://h:1/?a=1", "http://h:1/#x", ""])
def test_unusable_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConnectionSettingsError):
        check_server_url(url)
    with pytest.raises(ConnectionSettingsError):
        save_connection(tmp_path, url, "k")
    assert load_connection({"ATELIER_URL": url}, tmp_path) is None


def test_a_broken_settings_file_counts_as_unset(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).parent.mkdir(parents=True)
    (tmp_path / SETTINGS_FILE).write_text("{not json")
    assert load_connection({}, tmp_path) is None


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1_8000"),
        ("https://atelier.example", "atelier.example_443"),
        ("http://[::1]:81", "--1_81"),
    ],
)
def test_each_server_has_its_own_cache_folder(url: str, folder: str) -> None:
    assert server_folder_name(url) == folder
