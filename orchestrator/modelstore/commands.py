# SPDX-License-Identifier: Apache-2.0
"""``atelier models pull|list|remove``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator.cli_support import add_setting_flags, settings_from
from orchestrator.modelstore.known import KNOWN
from orchestrator.modelstore.pull import FOLDERS, UNREACHABLE_EXIT, PullError, pull
from orchestrator.modelstore.store import ModelStore
from orchestrator.settings import Settings
from orchestrator.training.captioners import KNOWN_CAPTIONERS


def model_store(settings: Settings) -> ModelStore:
    """The store and catalog the service reads."""
    return ModelStore(settings.models_dir, settings.model_catalog)


def cmd_pull(args: argparse.Namespace) -> int:
    """Put a base model into the models store and the model catalog."""
    store = model_store(settings_from(args))
    try:
        result = pull(store, args.model, location=args.location, folder=args.folder, name=args.name,
                      sha256=args.sha256, captioner=args.captioner)  # fmt: skip
    except (PullError, OSError, ValueError) as exc:
        print(f"atelier models pull: {exc}", file=sys.stderr)
        return UNREACHABLE_EXIT if isinstance(exc, PullError) and exc.unreachable else 1
    entry = f" (catalog: {result.name})" if result.entry else ""
    print(f"{result.name}: {len(result.files)} file(s) in {store.root}{entry}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """The models in the store and the catalog; --known lists what `pull` knows by name."""
    store = model_store(settings_from(args))
    if args.known:
        for model in KNOWN.values():
            print(f"{model.name:<15} {model.description}")
        for name, known in KNOWN_CAPTIONERS.items():
            print(f"{name:<15} {known.description}: {known.repo} (for captions 'auto')")
        return 0
    rows = store.listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "" if row["complete"] else "  (files missing)"
        print(f"{row['name']:<24} {row['family'] or '-':<6} {row['size'] / 1e9:6.2f} GB  {row['source']}{state}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove a model's catalog entry and the files no other model uses."""
    store = model_store(settings_from(args))
    try:
        removed = store.remove(args.model)
    except KeyError:
        print(f"atelier models remove: no model {args.model!r} (see `atelier models list`)", file=sys.stderr)
        return 1
    for path in removed:
        print(f"removed {path}")
    return 0


def register_model_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``models`` and its subcommands."""
    models = subparsers.add_parser("models", help="pull, list and remove base models")
    sub = models.add_subparsers(dest="models_command", required=True)
    pull_cmd = sub.add_parser("pull", help=cmd_pull.__doc__)
    pull_cmd.add_argument(
        "model", help=f"a known name ({', '.join([*KNOWN, *KNOWN_CAPTIONERS])}), REPO:FILE, or a name for --from"
    )
    pull_cmd.add_argument("--from", dest="location", help="a local file or an http(s) URL instead of the hub")
    pull_cmd.add_argument("--folder", choices=FOLDERS, default="checkpoints", help="store folder (REPO:FILE, --from)")
    pull_cmd.add_argument("--name", help="the catalog name (default: the file name without extension)")
    pull_cmd.add_argument("--sha256", help="expected sha256 of a --from file")
    pull_cmd.add_argument(
        "--captioner",
        action="store_true",
        help="MODEL is a hub repository (org/name) of a BLIP or Florence-2 model",
    )
    pull_cmd.set_defaults(func=cmd_pull)
    listing = sub.add_parser("list", help=cmd_list.__doc__)
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--known", action="store_true")
    listing.set_defaults(func=cmd_list)
    remove = sub.add_parser("remove", help=cmd_remove.__doc__)
    remove.add_argument("model")
    remove.set_defaults(func=cmd_remove)
    for parser in (pull_cmd, listing, remove):
        add_setting_flags(parser, "models_dir")
