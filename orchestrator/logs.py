"""Logging as operators expect it: one line per record, as JSON (``ATELIER_LOG_FORMAT=json``, with
python-json-logger) or text, each carrying the context it happened in: ``request_id``, ``owner``, ``job_id``,
``kind``, ``backend``, ``attempt``.

The context lives in a :class:`contextvars.ContextVar`: a request binds its id and owner for the handler's
duration, the worker binds the job's fields inside the job's own task (tasks copy the context when created,
so nothing leaks between jobs), and a filter on the handler copies the fields onto every record. The access
log is one record per request with its id, method, path, status and duration; ``X-Request-ID`` is taken from
the request when it is sane, else made, and always sent back (:mod:`orchestrator.api.request_log`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("request_id", "owner", "job_id", "kind", "backend", "attempt")
_NOTHING: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("atelier_log_context", default=_NOTHING)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add fields to every record logged inside the block (and in tasks it creates)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current context until it ends (a task's, or an enclosing :func:`bound` block's)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def current() -> Mapping[str, Any]:
    """The fields bound now."""
    return _context.get()


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (fields passed with ``extra=`` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, str(value))
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message [key=value ...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)]
        return f"{line} [{' '.join(fields)}]" if fields else line


def configure(level: str, log_format: str) -> None:
    """Root logging on stderr in the chosen format, with the context filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if log_format == "json":
        renames = {"asctime": "time", "levelname": "level", "name": "logger"}
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields=renames))
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
