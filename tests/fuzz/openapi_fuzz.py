"""Fuzzing the API with schemathesis from its own OpenAPI document: no 5xx, every answer as documented.

For each operation, schemathesis generates requests from the document (valid ones and, in negative mode,
ones that break it: wrong types, missing fields, out-of-range numbers, odd strings in paths and queries),
sends them to the running service and checks each answer: not a 5xx, a documented status, a documented
content type, a body that matches the documented schema. Operations take turns, valid then invalid
requests, until the time is up; a failing request is shrunk by hypothesis to a small example.

Run against a live service of its own (tests/fuzz/service.py) from a thread, so the service's event loop
keeps running in the caller's thread. ``python -m tests.fuzz.run --duration 600`` is the long run.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisDeprecationWarning, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The caller's live event stream never ends by itself: there is no answer to check.
ENDLESS = frozenset({("GET", "/v1/events")})


@dataclass
class FuzzReport:
    """What a run sent and found."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    operations: int = 0

    def summary(self) -> str:
        """One paragraph for logs and the benchmark-style script."""
        by_class = dict(sorted(Counter(f"{status // 100}xx" for status in self.statuses.elements()).items()))
        server_errors = sum(n for s, n in self.statuses.items() if s >= 500)
        return (
            f"{self.requests} requests over {self.operations} operations; by status class {by_class}; "
            f"5xx: {server_errors}; failures: {len(self.failures)}"
        )


def _operations(document: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(document)
    ops = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    return [op for op in ops if (op.method.upper(), op.path) not in ENDLESS]


# aiohttp's parser refuses a request line longer than this with a bare 400 before any handler runs (a query with
# hundreds of generated values reaches it: CI, GET /v1/generations?status=...).
REQUEST_LINE_LIMIT = 8190


def _refused_by_http_parser(response: Any) -> bool:
    """A 400 from aiohttp's HTTP parser, not from the API: every answer of ours is problem+json, the parser's is
    plain text (an over-long request line, a malformed header such as ``Content-Length: 6t``; both seen in CI)."""
    if response.status_code != 400:
        return False
    return "application/problem+json" not in response.headers.get("Content-Type", "")


def _fuzz_operation(
    operation: Any, mode: GenerationMode, target: tuple[str, dict[str, str]], examples: int, report: FuzzReport
) -> bool:
    """Send ``examples`` requests; False when the operation and mode need not run again (it failed, or has
    no invalid request to make)."""
    url, headers = target
    session = requests.Session()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    def check(case: Any) -> None:
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        report.requests += 1
        report.statuses[response.status_code] += 1
        if _refused_by_http_parser(response):
            return  # no handler saw it: the server's limit on a request line, not an answer of the document
        case.validate_response(response, checks=CHECKS)

    try:
        with warnings.catch_warnings():  # schemathesis' strategies use `random` (hypothesis deprecates that)
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            check()
    except Unsatisfiable:  # nothing to negate (an operation without parameters or body): no invalid request
        return False
    except (Exception, BaseExceptionGroup) as failure:  # a check failed: keep the shrunk example and go on
        report.failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {failure}"[:4000])
        return False
    finally:
        session.close()
    return True


def fuzz(url: str, headers: dict[str, str], *, seconds: float, examples: int = 10) -> FuzzReport:
    """Fuzz every operation of the service at ``url`` for about ``seconds`` (blocking; run it in a thread)."""
    document = requests.get(f"{url}/openapi.json", timeout=30).json()
    operations = _operations(document)
    report = FuzzReport(operations=len(operations))
    deadline = time.monotonic() + seconds
    rounds = [(op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    while rounds and time.monotonic() < deadline:
        again = []
        for operation, mode in rounds:
            if time.monotonic() >= deadline:
                return report
            if _fuzz_operation(operation, mode, (url, headers), examples, report):
                again.append((operation, mode))
        rounds = again
    return report
