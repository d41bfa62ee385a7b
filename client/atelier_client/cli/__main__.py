"""``python -m atelier_client.cli``: the same as the ``atelier`` command."""

from __future__ import annotations

from atelier_client.cli.main import main

raise SystemExit(main())
